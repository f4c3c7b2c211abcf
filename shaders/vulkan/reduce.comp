#version 450
#extension GL_GOOGLE_include_directive : require
// Reduce* over any axes. The kept dims (up to 3 after merging neighbours) index the output in
// order; the reduced dims (up to 3) are walked for each output. WG false: one invocation per
// output (many outputs, short rows); WG true: one 64-wide workgroup per output (long rows).
// OP: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 L1, 6 L2, 7 log-sum, 8 log-sum-exp, 9 sum of squares.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int OP = 0;
layout(constant_id = 2) const bool WG = false;
#include "common.glsl"
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint nout, nred;
    uint ks[3], kst[3], rs[3], rst[3];
    float scale;  // 1 / nred, for the mean
} p;

const int HOW = OP == 2 ? 1 : OP == 3 ? 2 : OP == 4 ? 3 : 0;

uint offset(uint i, bool kept) {
    uint off = 0u;
    for (int d = 2; d >= 0; --d) {
        uint size = kept ? p.ks[d] : p.rs[d];
        off += (i % size) * (kept ? p.kst[d] : p.rst[d]);
        i /= size;
    }
    return off;
}

float start() {
    if (OP == 2) return uintBitsToFloat(0xff800000u);
    if (OP == 3) return uintBitsToFloat(0x7f800000u);
    return OP == 4 ? 1.0 : 0.0;
}

float term(float v, float m) {
    if (OP == 5) return abs(v);
    if (OP == 6 || OP == 9) return v * v;
    if (OP == 8) return exp(v - m);
    return v;
}

float finish(float acc, float m) {
    if (OP == 1) return acc * p.scale;
    if (OP == 6) return sqrt(acc);
    if (OP == 7) return log(acc);
    if (OP == 8) return m + log(acc);
    return acc;
}

void main() {
    uint o = WG ? flat_group() : flat_index();
    if (o >= p.nout) return;  // uniform over a workgroup in WG mode
    uint base = offset(o, true);
    uint first = WG ? gl_LocalInvocationID.x : 0u, step = WG ? 64u : 1u;
    float m = 0.0;
    if (OP == 8) {  // log-sum-exp: shift by the maximum first
        m = uintBitsToFloat(0xff800000u);
        for (uint r = first; r < p.nred; r += step) m = max(m, x[base + offset(r, false)]);
        if (WG) m = group_reduce(m, 1);
    }
    float acc = start();
    for (uint r = first; r < p.nred; r += step) acc = merge(acc, term(x[base + offset(r, false)], m), HOW);
    if (WG) acc = group_reduce(acc, HOW);
    if (!WG || gl_LocalInvocationID.x == 0u) y[o] = finish(acc, m);
}
