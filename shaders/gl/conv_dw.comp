// Depthwise 2-D convolution (one input channel per group, any channel multiplier), NCHW.
// An invocation computes 4 consecutive output pixels of one output channel.
// K3_STRIDE (1 or 2): a 3x3 kernel, no dilation, that horizontal stride.

layout(local_size_x = 64) in;
#include "common.glsl"
#include "act.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
#ifdef BIAS
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
#endif
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

uniform ivec3 u_in;        // C, H, W
uniform ivec4 u_out;       // M, OH, OW, pixel blocks per image
uniform ivec4 u_kernel;    // KH, KW, 1, channel multiplier
uniform ivec4 u_step;      // stride y, stride x, dilation y, dilation x
uniform ivec2 u_pad;       // top, left

float load(int row, int ix) {
    return (ix >= 0 && ix < u_in.z) ? x[row + ix] : 0.0;
}

void main() {
    int blk = int(gl_GlobalInvocationID.x);
    if (blk >= u_out.w) {
        return;
    }
    int m = int(gl_GlobalInvocationID.y);
    int n = int(gl_GlobalInvocationID.z);
    int owb = (u_out.z + 3) / 4;
    ivec2 rb = divmod(blk, owb);
    int oy = rb.x;
    int ox0 = rb.y * 4;
    int iy0 = oy * u_step.x - u_pad.x;
    int ix0 = ox0 * u_step.y - u_pad.y;
    int sx = u_step.y;
    int c = m / u_kernel.w;
    int xc = (n * u_in.x + c) * u_in.y * u_in.z;
    int wbase = m * u_kernel.x * u_kernel.y;
    vec4 acc = vec4(0.0);
#ifdef K3_STRIDE
    // 3 taps, no dilation, a compile-time stride: the 4 windows of a row share their loads.
    for (int ky = 0; ky < 3; ky++) {
        int iy = iy0 + ky;
        if (iy < 0 || iy >= u_in.y) {
            continue;
        }
        int row = xc + iy * u_in.z;
        float v[3 * K3_STRIDE + 3];
        for (int i = 0; i < 3 * K3_STRIDE + 3; i++) {
            v[i] = load(row, ix0 + i);
        }
        float w0 = w[wbase + ky * 3];
        float w1 = w[wbase + ky * 3 + 1];
        float w2 = w[wbase + ky * 3 + 2];
        for (int j = 0; j < 4; j++) {
            acc[j] += w0 * v[j * K3_STRIDE] + w1 * v[j * K3_STRIDE + 1] + w2 * v[j * K3_STRIDE + 2];
        }
    }
#else
    for (int ky = 0; ky < u_kernel.x; ky++) {
        int iy = iy0 + ky * u_step.z;
        if (iy < 0 || iy >= u_in.y) {
            continue;
        }
        int row = xc + iy * u_in.z;
        for (int kx = 0; kx < u_kernel.y; kx++) {
            float wv = w[wbase + ky * u_kernel.y + kx];
            int ix = ix0 + kx * u_step.w;
            acc += wv * vec4(load(row, ix), load(row, ix + sx), load(row, ix + 2 * sx), load(row, ix + 3 * sx));
        }
    }
#endif
#ifdef BIAS
    float b = bias[m];
#else
    float b = 0.0;
#endif
    int base = ((n * u_out.x + m) * u_out.y + oy) * u_out.z + ox0;
    int valid = min(4, u_out.z - ox0);
    for (int j = 0; j < 4; j++) {
        if (j < valid) {
            y[base + j] = activate(acc[j] + b);
        }
    }
}
