#version 450
#extension GL_GOOGLE_include_directive : require
// Transposed convolution as a gather: output (oy, ox) receives input (iy, ix) through tap
// (ky, kx) when oy + pt = iy * sh + ky * dh (likewise for x). Weights (C_in, C_out/group, KH, KW).
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
    uint cin_g, cout_g, total;
    float a, b;
} p;

void main() {
    uint i = flat_index();
    if (i >= p.total) return;
    uint ox = i % p.ow;
    uint t = i / p.ow;
    uint oy = t % p.oh;
    t /= p.oh;
    uint oc = t % p.cout, n = t / p.cout;
    uint g = oc / p.cout_g, ocg = oc % p.cout_g;
    uint ksz = p.kh * p.kw;
    float acc = HAS_BIAS ? bias[oc] : 0.0;
    for (uint ky = 0u; ky < p.kh; ++ky) {
        int ty = int(oy) + p.pt - int(ky * p.dh);
        if (ty < 0 || ty % int(p.sh) != 0) continue;
        uint iy = uint(ty) / p.sh;
        if (iy >= p.h) continue;
        for (uint kx = 0u; kx < p.kw; ++kx) {
            int tx = int(ox) + p.pl - int(kx * p.dw);
            if (tx < 0 || tx % int(p.sw) != 0) continue;
            uint ix = uint(tx) / p.sw;
            if (ix >= p.w) continue;
            for (uint icg = 0u; icg < p.cin_g; ++icg) {
                uint ic = g * p.cin_g + icg;
                acc += x[((n * p.cin + ic) * p.h + iy) * p.w + ix]
                     * w[(ic * p.cout_g + ocg) * ksz + ky * p.kw + kx];
            }
        }
    }
    y[i] = apply_op(ACT, acc, p.a, p.b);
}
