#version 450
#extension GL_GOOGLE_include_directive : require
// y = x * s[c] + t[c] over N, C, inner: an unfolded BatchNormalization, whose per-channel
// scale and shift are computed once on the host.
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer S { float s[]; };
layout(std430, binding = 2) readonly buffer T { float t[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint n, c, inner; } p;

void main() {
    uint i = flat_index();
    if (i >= p.n) return;
    uint c = (i / p.inner) % p.c;
    y[i] = x[i] * s[c] + t[c];
}
