// 2-D transposed convolution as a gather: each output pixel sums the input pixels whose
// kernel footprint covers it. Weights (C, M/group, KH, KW); one invocation per output value.

layout(local_size_x = 128) in;
#include "common.glsl"
#include "act.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
#ifdef BIAS
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
#endif
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

uniform ivec3 u_in;        // C, H, W
uniform ivec3 u_out;       // M, OH, OW
uniform ivec4 u_kernel;    // KH, KW, C per group, M per group
uniform ivec4 u_step;      // stride y, stride x, dilation y, dilation x
uniform ivec2 u_pad;       // begin crop: top, left
uniform int u_n;           // output values

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    int ox = i % u_out.z;
    int oy = (i / u_out.z) % u_out.y;
    int m = (i / (u_out.z * u_out.y)) % u_out.x;
    int n = i / (u_out.z * u_out.y * u_out.x);
    int g = m / u_kernel.w;
    int mg = m % u_kernel.w;
    int ksize = u_kernel.x * u_kernel.y;
    float acc = 0.0;
    for (int ky = 0; ky < u_kernel.x; ky++) {
        int ty = oy + u_pad.x - ky * u_step.z;
        if (ty < 0 || ty % u_step.x != 0 || ty / u_step.x >= u_in.y) {
            continue;
        }
        int iy = ty / u_step.x;
        for (int kx = 0; kx < u_kernel.y; kx++) {
            int tx = ox + u_pad.y - kx * u_step.w;
            if (tx < 0 || tx % u_step.y != 0 || tx / u_step.y >= u_in.z) {
                continue;
            }
            int ix = tx / u_step.y;
            for (int c = 0; c < u_kernel.z; c++) {
                int ic = g * u_kernel.z + c;
                acc += x[((n * u_in.x + ic) * u_in.y + iy) * u_in.z + ix]
                     * w[(ic * u_kernel.w + mg) * ksize + ky * u_kernel.y + kx];
            }
        }
    }
#ifdef BIAS
    acc += bias[m];
#endif
    y[i] = activate(acc);
}
