#version 450
#extension GL_GOOGLE_include_directive : require
// Depthwise convolution (group == C_in == C_out): one output per invocation, the kernel
// window of its own channel only.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int ACT = 0;
layout(constant_id = 2) const bool HAS_BIAS = false;
#include "common.glsl"
#include "activation.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint c, h, w, oh, ow, kh, kw, sh, sw, dh, dw;
    int pt, pl;
    uint total;
    float a, b;
} p;

void main() {
    uint i = flat_index();
    if (i >= p.total) return;
    uint ox = i % p.ow;
    uint t = i / p.ow;
    uint oy = t % p.oh;
    t /= p.oh;  // n * C + c
    uint c = t % p.c;
    uint base = t * p.h * p.w, wbase = c * p.kh * p.kw;
    int iy0 = int(oy * p.sh) - p.pt, ix0 = int(ox * p.sw) - p.pl;
    float acc = HAS_BIAS ? bias[c] : 0.0;
    for (uint ky = 0u; ky < p.kh; ++ky) {
        int iy = iy0 + int(ky * p.dh);
        if (iy < 0 || iy >= int(p.h)) continue;
        for (uint kx = 0u; kx < p.kw; ++kx) {
            int ix = ix0 + int(kx * p.dw);
            if (ix < 0 || ix >= int(p.w)) continue;
            acc += x[base + uint(iy) * p.w + uint(ix)] * w[wbase + ky * p.kw + kx];
        }
    }
    y[i] = apply_op(ACT, acc, p.a, p.b);
}
