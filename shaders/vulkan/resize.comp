#version 450
#extension GL_GOOGLE_include_directive : require
// Resize of the last two axes (nearest or linear) through per-axis tables computed on the host:
// for each output row then each output column, (index 0, index 1, weight 0, weight 1) as floats.
// Nearest has weight 1 on index 0 and 0 on index 1.
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Tab { vec4 tab[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint total, h, w, oh, ow; } p;

void main() {
    uint i = flat_index();
    if (i >= p.total) return;
    uint ox = i % p.ow;
    uint t = i / p.ow;
    uint oy = t % p.oh, base = (t / p.oh) * p.h * p.w;
    vec4 ty = tab[oy], tx = tab[p.oh + ox];
    uint r0 = base + uint(ty.x) * p.w, r1 = base + uint(ty.y) * p.w;
    uint c0 = uint(tx.x), c1 = uint(tx.y);
    float top = tx.z * x[r0 + c0] + tx.w * x[r0 + c1];
    float bottom = tx.z * x[r1 + c0] + tx.w * x[r1 + c1];
    y[i] = ty.z * top + ty.w * bottom;
}
