// Direct 2-D convolution (groups, dilation, strides, asymmetric pads), NCHW.
// An invocation computes 4 output channels of one group (y) x 4 consecutive output pixels (x):
// each input value loaded is used 4 times, each weight 4 times. Weights are repacked on the host
// as vec4s of 4 output channels: w4[((g * mblocks + mb) * C_per_group + c) * KH * KW + tap].
// Channels past the group's end and pixels past the row's end are computed, not stored.
// POINTWISE (1x1, stride 1, no pad): the 4 pixels are consecutive in the flattened plane, read
// as one vec4 when POINTWISE_VEC4 (plane size a multiple of 4), 4 input channels per iteration.

#ifdef POINTWISE_VEC4
#define POINTWISE 1
#endif

layout(local_size_x = 64) in;
#include "common.glsl"
#include "act.glsl"

#ifdef POINTWISE_VEC4
layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
#else
layout(std430, binding = 0) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 1) readonly buffer W { vec4 w4[]; };
#ifdef BIAS
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
#endif
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

uniform ivec3 u_in;        // C, H, W
uniform ivec4 u_out;       // M, OH, OW, pixel blocks per image
uniform ivec4 u_kernel;    // KH, KW, C per group, M per group
uniform ivec4 u_step;      // stride y, stride x, dilation y, dilation x
uniform ivec2 u_pad;       // top, left
uniform int u_mblocks;     // blocks of 4 output channels per group

#ifndef POINTWISE_VEC4
float load(int row, int ix) {
    return (ix >= 0 && ix < u_in.z) ? x[row + ix] : 0.0;
}
#endif

void main() {
    int blk = int(gl_GlobalInvocationID.x);
    if (blk >= u_out.w) {
        return;
    }
    int g = int(gl_GlobalInvocationID.y) / u_mblocks;
    int mb = int(gl_GlobalInvocationID.y) % u_mblocks;
    int n = int(gl_GlobalInvocationID.z);
    int cg = u_kernel.z;
    int ksize = u_kernel.x * u_kernel.y;
    int wbase = int(gl_GlobalInvocationID.y) * cg * ksize;
    int plane = u_in.y * u_in.z;
    int xbase = (n * u_in.x + g * cg) * plane;
    vec4 acc0 = vec4(0.0);
    vec4 acc1 = vec4(0.0);
    vec4 acc2 = vec4(0.0);
    vec4 acc3 = vec4(0.0);
#ifdef POINTWISE
    int p0 = blk * 4;
    int outs = plane;
    int valid = min(4, outs - p0);
    int pix[4] = int[4](p0, p0 + 1, p0 + 2, p0 + 3);
#ifdef POINTWISE_VEC4
    int q = (xbase + p0) / 4;
    int step4 = plane / 4;
    int c = 0;
    for (; c + 4 <= cg; c += 4) {
        vec4 xa = x4[q];
        vec4 xb = x4[q + step4];
        vec4 xc = x4[q + 2 * step4];
        vec4 xd = x4[q + 3 * step4];
        vec4 wa = w4[wbase + c];
        vec4 wb = w4[wbase + c + 1];
        vec4 wc = w4[wbase + c + 2];
        vec4 wd = w4[wbase + c + 3];
        acc0 += wa * xa.x + wb * xb.x + wc * xc.x + wd * xd.x;
        acc1 += wa * xa.y + wb * xb.y + wc * xc.y + wd * xd.y;
        acc2 += wa * xa.z + wb * xb.z + wc * xc.z + wd * xd.z;
        acc3 += wa * xa.w + wb * xb.w + wc * xc.w + wd * xd.w;
        q += 4 * step4;
    }
    for (; c < cg; c++) {
        vec4 xa = x4[q];
        vec4 wa = w4[wbase + c];
        acc0 += wa * xa.x;
        acc1 += wa * xa.y;
        acc2 += wa * xa.z;
        acc3 += wa * xa.w;
        q += step4;
    }
#else
    int last = plane - 1;
    int q0 = min(p0, last);
    int q1 = min(p0 + 1, last);
    int q2 = min(p0 + 2, last);
    int q3 = min(p0 + 3, last);
    for (int c = 0; c < cg; c++) {
        int xc = xbase + c * plane;
        vec4 wv = w4[wbase + c];
        acc0 += wv * x[xc + q0];
        acc1 += wv * x[xc + q1];
        acc2 += wv * x[xc + q2];
        acc3 += wv * x[xc + q3];
    }
#endif
#else
    int owb = (u_out.z + 3) / 4;
    ivec2 rb = divmod(blk, owb);
    int oy = rb.x;
    int ox0 = rb.y * 4;
    int iy0 = oy * u_step.x - u_pad.x;
    int ix0 = ox0 * u_step.y - u_pad.y;
    int sx = u_step.y;
#ifdef K3S1
    for (int c = 0; c < cg; c++) {
        int xc = xbase + c * plane;
        int wc = wbase + c * 9;
        for (int ky = 0; ky < 3; ky++) {
            int iy = iy0 + ky;
            if (iy < 0 || iy >= u_in.y) {
                continue;
            }
            int row = xc + iy * u_in.z;
            float v0 = load(row, ix0);
            float v1 = load(row, ix0 + 1);
            float v2 = load(row, ix0 + 2);
            float v3 = load(row, ix0 + 3);
            float v4 = load(row, ix0 + 4);
            float v5 = load(row, ix0 + 5);
            vec4 wa = w4[wc + ky * 3];
            vec4 wb = w4[wc + ky * 3 + 1];
            vec4 wd = w4[wc + ky * 3 + 2];
            acc0 += wa * v0 + wb * v1 + wd * v2;
            acc1 += wa * v1 + wb * v2 + wd * v3;
            acc2 += wa * v2 + wb * v3 + wd * v4;
            acc3 += wa * v3 + wb * v4 + wd * v5;
        }
    }
#else
    for (int c = 0; c < cg; c++) {
        int xc = xbase + c * plane;
        int wc = wbase + c * ksize;
        for (int ky = 0; ky < u_kernel.x; ky++) {
            int iy = iy0 + ky * u_step.z;
            if (iy < 0 || iy >= u_in.y) {
                continue;
            }
            int row = xc + iy * u_in.z;
            int wk = wc + ky * u_kernel.y;
            for (int kx = 0; kx < u_kernel.y; kx++) {
                vec4 wv = w4[wk + kx];
                int ix = ix0 + kx * u_step.w;
                acc0 += wv * load(row, ix);
                acc1 += wv * load(row, ix + sx);
                acc2 += wv * load(row, ix + 2 * sx);
                acc3 += wv * load(row, ix + 3 * sx);
            }
        }
    }
#endif
    int outs = u_out.y * u_out.z;
    int r = oy * u_out.z + ox0;
    int pix[4] = int[4](r, r + 1, r + 2, r + 3);
    int valid = min(4, u_out.z - ox0);
#endif
    vec4 acc[4] = vec4[4](acc0, acc1, acc2, acc3);
    int mg0 = mb * 4;
    int m0 = g * u_kernel.w + mg0;
    for (int k = 0; k < 4; k++) {
        int m = m0 + k;
#ifdef BIAS
        float b = bias[min(m, u_out.x - 1)];
#else
        float b = 0.0;
#endif
        int base = (n * u_out.x + m) * outs;
        for (int j = 0; j < 4; j++) {
            if (mg0 + k < u_kernel.w && j < valid) {
                y[base + pix[j]] = activate(acc[j][k] + b);
            }
        }
    }
}
