#version 450
#extension GL_GOOGLE_include_directive : require
// LayerNormalization: one 64-wide workgroup per row of D normalized elements. Mean, then the
// variance of the centred values (two passes: no cancellation), then the affine. scale and
// bias broadcast over the leading normalized dims: element d uses index d % size.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool HAS_BIAS = false;
#include "common.glsl"
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer S { float scale[]; };
layout(std430, binding = 2) readonly buffer Bi { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint rows, d, nscale, nbias; float eps; } p;

void main() {
    uint row = flat_group();
    if (row >= p.rows) return;  // uniform over the workgroup
    uint base = row * p.d, lid = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint i = lid; i < p.d; i += 64u) s += x[base + i];
    float mean = group_reduce(s, 0) / float(p.d);
    float q = 0.0;
    for (uint i = lid; i < p.d; i += 64u) {
        float c = x[base + i] - mean;
        q += c * c;
    }
    float inv = 1.0 / sqrt(group_reduce(q, 0) / float(p.d) + p.eps);
    for (uint i = lid; i < p.d; i += 64u) {
        float v = (x[base + i] - mean) * inv * scale[i % p.nscale];
        y[base + i] = HAS_BIAS ? v + bias[i % p.nbias] : v;
    }
}
