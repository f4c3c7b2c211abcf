#version 450
#extension GL_GOOGLE_include_directive : require
// Softmax / LogSoftmax along one axis of a tensor seen as (outer, A, inner): a row is
// (o, i) with elements at o*A*inner + a*inner + i. WG false: one invocation per row;
// WG true: one 64-wide workgroup per row. LOG selects LogSoftmax.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool LOG = false;
layout(constant_id = 2) const bool WG = false;
#include "common.glsl"
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint rows, len, inner; } p;

void main() {
    uint row = WG ? flat_group() : flat_index();
    if (row >= p.rows) return;  // uniform over a workgroup in WG mode
    uint base = (row / p.inner) * p.len * p.inner + row % p.inner;
    uint first = WG ? gl_LocalInvocationID.x : 0u, step = WG ? 64u : 1u;
    float m = uintBitsToFloat(0xff800000u);
    for (uint a = first; a < p.len; a += step) m = max(m, x[base + a * p.inner]);
    if (WG) m = group_reduce(m, 1);
    float s = 0.0;
    for (uint a = first; a < p.len; a += step) s += exp(x[base + a * p.inner] - m);
    if (WG) s = group_reduce(s, 0);
    float ls = log(s), inv = 1.0 / s;
    for (uint a = first; a < p.len; a += step) {
        float v = x[base + a * p.inner] - m;
        y[base + a * p.inner] = LOG ? v - ls : exp(v) * inv;
    }
}
