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
    ivec2 xr = divmod(i, u_out.z);
    ivec2 yr = divmod(xr.x, u_out.y);
    ivec2 mr = divmod(yr.x, u_out.x);
    int ox = xr.y;
    int oy = yr.y;
    int m = mr.y;
    int n = mr.x;
    ivec2 gm = divmod(m, u_kernel.w);
    int g = gm.x;
    int mg = gm.y;
    int ksize = u_kernel.x * u_kernel.y;
    float acc = 0.0;
    for (int ky = 0; ky < u_kernel.x; ky++) {
        int ty = oy + u_pad.x - ky * u_step.z;
        ivec2 sy = divmod(max(ty, 0), u_step.x);
        if (ty < 0 || sy.y != 0 || sy.x >= u_in.y) {
            continue;
        }
        int iy = sy.x;
        for (int kx = 0; kx < u_kernel.y; kx++) {
            int tx = ox + u_pad.y - kx * u_step.w;
            ivec2 sx = divmod(max(tx, 0), u_step.y);
            if (tx < 0 || sx.y != 0 || sx.x >= u_in.z) {
                continue;
            }
            int ix = sx.x;
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
