#version 450
#extension GL_GOOGLE_include_directive : require
// MaxPool / AveragePool over NCHW, one output per invocation. MODE 0: max; 1: average over
// the window's positions inside the input; 2: average counting the pads as well
// (count_include_pad), i.e. positions inside [-pt, h + pb) x [-pl, w + pr). ceil_mode only
// changes the output size, which arrives already computed.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int MODE = 0;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params {
    uint total, h, w, oh, ow, kh, kw, sh, sw, dh, dw;
    int pt, pl, hend, wend;  // hend = h + pb, wend = w + pr
} p;

void main() {
    uint i = flat_index();
    if (i >= p.total) return;
    uint ox = i % p.ow;
    uint t = i / p.ow;
    uint oy = t % p.oh, nc = t / p.oh;
    uint base = nc * p.h * p.w;
    int iy0 = int(oy * p.sh) - p.pt, ix0 = int(ox * p.sw) - p.pl;
    float acc = MODE == 0 ? uintBitsToFloat(0xff800000u) : 0.0;  // -inf
    int count = 0;
    for (uint ky = 0u; ky < p.kh; ++ky) {
        int iy = iy0 + int(ky * p.dh);
        bool row_in = iy >= 0 && iy < int(p.h);
        for (uint kx = 0u; kx < p.kw; ++kx) {
            int ix = ix0 + int(kx * p.dw);
            bool inside = row_in && ix >= 0 && ix < int(p.w);
            if (inside) {
                float v = x[base + uint(iy) * p.w + uint(ix)];
                acc = MODE == 0 ? max(acc, v) : acc + v;
            }
            if (MODE == 1 && inside) count++;
            if (MODE == 2 && iy < p.hend && ix < p.wend) count++;  // iy, ix >= -pad by construction
        }
    }
    y[i] = MODE == 0 ? acc : acc / float(max(count, 1));
}
