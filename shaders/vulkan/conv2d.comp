#version 450
#extension GL_GOOGLE_include_directive : require
// Direct convolution, any groups/strides/dilations/pads (NCHW, weights OIHW). Each invocation
// computes a 4x4 block: 4 output channels of one group x 4 neighbouring output columns, so
// every input load feeds 4 and every weight load 4 multiply-adds. One flat index over
// (channel block, pixel block), pixels fastest: neighbouring invocations read neighbouring
// inputs, and a layer with few pixels and many channels still fills its workgroups.
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
    uint cin, h, w, cout, oh, ow, kh, kw;
    uint sh, sw, dh, dw;
    int pt, pl;
    uint cin_g, cout_g, npix, ocb;  // npix: pixel blocks N * OH * ceil(OW/4); ocb: channel blocks per group
    float a, b;
} p;

void main() {
    uint gi = flat_index();
    if (gi >= p.npix * p.ocb * (p.cout / p.cout_g)) return;
    uint idx = gi % p.npix, ob = gi / p.npix;
    uint owb = (p.ow + 3u) / 4u;
    uint ox0 = (idx % owb) * 4u;
    uint t = idx / owb;
    uint oy = t % p.oh, n = t / p.oh;
    uint g = ob / p.ocb;
    uint oc0 = g * p.cout_g + (ob % p.ocb) * 4u;
    uint ocn = min(4u, (g + 1u) * p.cout_g - oc0);
    uint ksz = p.kh * p.kw, wstride = p.cin_g * ksz;
    int iy0 = int(oy * p.sh) - p.pt;
    int ix0 = int(ox0 * p.sw) - p.pl;
    float acc[4][4];
    for (int o = 0; o < 4; ++o)
        for (int j = 0; j < 4; ++j) acc[o][j] = 0.0;
    for (uint ic = 0u; ic < p.cin_g; ++ic) {
        uint xc = (n * p.cin + g * p.cin_g + ic) * p.h * p.w;
        uint wc = oc0 * wstride + ic * ksz;
        for (uint ky = 0u; ky < p.kh; ++ky) {
            int iy = iy0 + int(ky * p.dh);
            if (iy < 0 || iy >= int(p.h)) continue;
            uint row = xc + uint(iy) * p.w;
            for (uint kx = 0u; kx < p.kw; ++kx) {
                float xv[4];
                for (int j = 0; j < 4; ++j) {
                    int ix = ix0 + j * int(p.sw) + int(kx * p.dw);
                    xv[j] = (ix >= 0 && ix < int(p.w)) ? x[row + uint(ix)] : 0.0;
                }
                uint wi = wc + ky * p.kw + kx;
                for (uint o = 0u; o < 4u; ++o) {
                    float wv = o < ocn ? w[wi + o * wstride] : 0.0;
                    for (int j = 0; j < 4; ++j) acc[o][j] += wv * xv[j];
                }
            }
        }
    }
    for (uint o = 0u; o < ocn; ++o) {
        float bv = HAS_BIAS ? bias[oc0 + o] : 0.0;
        uint out_row = ((n * p.cout + oc0 + o) * p.oh + oy) * p.ow;
        for (uint j = 0u; j < 4u; ++j) {
            if (ox0 + j < p.ow) y[out_row + ox0 + j] = apply_op(ACT, acc[o][j] + bv, p.a, p.b);
        }
    }
}
