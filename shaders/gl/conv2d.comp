// Direct 2-D convolution (groups, dilation, strides, asymmetric pads), NCHW, weights OIHW.
// An invocation computes 4 output channels of one group (y) x 4 consecutive output pixels (x):
// each input value loaded is used 4 times and each weight 4 times. Channels past the group's
// end and pixels past the row's end are computed on clamped indices and not stored.
// POINTWISE (1x1, stride 1, no pad): the 4 pixels are consecutive in the flattened plane.

layout(local_size_x = 64) in;
#include "common.glsl"
#include "act.glsl"

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
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

float load(int row, int ix) {
    return 0.0;
}

void main() {
    int blk = int(gl_GlobalInvocationID.x);
    if (blk >= u_out.w) {
        return;
    }
    int g = int(gl_GlobalInvocationID.y) / u_mblocks;
    int mg0 = (int(gl_GlobalInvocationID.y) % u_mblocks) * 4;
    int n = int(gl_GlobalInvocationID.z);
    int mg = u_kernel.w;
    int ksize = u_kernel.x * u_kernel.y;
    int wstride = u_kernel.z * ksize;
    int m0 = g * mg + mg0;
    int w0 = (g * mg + min(mg0, mg - 1)) * wstride;
    int w1 = (g * mg + min(mg0 + 1, mg - 1)) * wstride;
    int w2 = (g * mg + min(mg0 + 2, mg - 1)) * wstride;
    int w3 = (g * mg + min(mg0 + 3, mg - 1)) * wstride;
    int plane = u_in.y * u_in.z;
    int xbase = (n * u_in.x + g * u_kernel.z) * plane;
    vec4 acc0 = vec4(0.0);
    vec4 acc1 = vec4(0.0);
    vec4 acc2 = vec4(0.0);
    vec4 acc3 = vec4(0.0);
#ifdef POINTWISE
    int p0 = blk * 4;
    int last = plane - 1;
    int q0 = min(p0, last);
    int q1 = min(p0 + 1, last);
    int q2 = min(p0 + 2, last);
    int q3 = min(p0 + 3, last);
    int wq = (g * u_mblocks + mg0 / 4) * u_kernel.z;
    for (int c = 0; c < u_kernel.z; c++) {
        int xc = xbase + c * plane;
        vec4 wv = w4[wq + c];
        vec4 xv = x4[(xc + p0) / 4];
        acc0 += wv * xv.x;
        acc1 += wv * xv.y;
        acc2 += wv * xv.z;
        acc3 += wv * xv.w;
    }
    int outs = u_out.y * u_out.z;
    int pix[4] = int[4](p0, p0 + 1, p0 + 2, p0 + 3);
    int valid = min(4, outs - p0);
#else
    int owb = (u_out.z + 3) / 4;
    int oy = blk / owb;
    int ox0 = (blk % owb) * 4;
    int iy0 = oy * u_step.x - u_pad.x;
    int ix0 = ox0 * u_step.y - u_pad.y;
    int sx = u_step.y;
    int wq = (g * u_mblocks + mg0 / 4) * u_kernel.z * ksize;
    for (int c = 0; c < u_kernel.z; c++) {
        int xc = xbase + c * plane;
        int wc = c * ksize;
        for (int ky = 0; ky < u_kernel.x; ky++) {
            int iy = iy0 + ky * u_step.z;
            if (iy < 0 || iy >= u_in.y) {
                continue;
            }
            int row = xc + iy * u_in.z;
            int wk = wc + ky * u_kernel.y;
            for (int kx = 0; kx < u_kernel.y; kx++) {
                vec4 wv = w4[wq + wk + kx];
                int ix = ix0 + kx * u_step.w;
                acc0 += wv * load(row, ix);
                acc1 += wv * load(row, ix + sx);
                acc2 += wv * load(row, ix + 2 * sx);
                acc3 += wv * load(row, ix + 3 * sx);
            }
        }
    }
    int outs = u_out.y * u_out.z;
    int r = oy * u_out.z + ox0;
    int pix[4] = int[4](r, r + 1, r + 2, r + 3);
    int valid = min(4, u_out.z - ox0);
#endif
    vec4 acc[4] = vec4[4](acc0, acc1, acc2, acc3);
    for (int k = 0; k < 4; k++) {
        int m = m0 + k;
#ifdef BIAS
        float b = bias[min(m, u_out.x - 1)];
#else
        float b = 0.0;
#endif
        int base = (n * u_out.x + m) * outs;
        for (int j = 0; j < 4; j++) {
            if (mg0 + k < mg && j < valid) {
                y[base + pix[j]] = activate(acc[j][k] + b);
            }
        }
    }
}
