// 2-D max / average pooling (POOL_MAX or POOL_AVG), NCHW, one invocation per output value.
// Windows may hang over the end (ceil_mode); the average divides by the window's count of
// input positions, or of padded positions [-pad_begin, size + pad_end) with count_include_pad.

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

uniform int u_n;           // output values
uniform ivec2 u_in;        // H, W
uniform ivec2 u_out;       // OH, OW
uniform ivec2 u_kernel;    // KH, KW
uniform ivec4 u_step;      // stride y, stride x, dilation y, dilation x
uniform ivec4 u_pad;       // top, left, bottom, right
uniform int u_include_pad;

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    ivec2 row = divmod(i, u_out.y);
    ivec2 col = divmod(row.x, u_out.x);
    int ox = row.y;
    int oy = col.y;
    int plane = col.x;
    int base = plane * u_in.x * u_in.y;
    int iy0 = oy * u_step.x - u_pad.x;
    int ix0 = ox * u_step.y - u_pad.y;
#ifdef POOL_MAX
    float acc = neg_inf();
#else
    float acc = 0.0;
#endif
    int ny = 0;
    int nx = 0;
    int lo_y = u_include_pad != 0 ? -u_pad.x : 0;
    int hi_y = u_include_pad != 0 ? u_in.x + u_pad.z : u_in.x;
    int lo_x = u_include_pad != 0 ? -u_pad.y : 0;
    int hi_x = u_include_pad != 0 ? u_in.y + u_pad.w : u_in.y;
    for (int kx = 0; kx < u_kernel.y; kx++) {
        int ix = ix0 + kx * u_step.w;
        if (ix >= lo_x && ix < hi_x) {
            nx++;
        }
    }
    for (int ky = 0; ky < u_kernel.x; ky++) {
        int iy = iy0 + ky * u_step.z;
        if (iy >= lo_y && iy < hi_y) {
            ny++;
        }
        if (iy < 0 || iy >= u_in.x) {
            continue;
        }
        int row = base + iy * u_in.y;
        for (int kx = 0; kx < u_kernel.y; kx++) {
            int ix = ix0 + kx * u_step.w;
            if (ix < 0 || ix >= u_in.y) {
                continue;
            }
#ifdef POOL_MAX
            acc = max(acc, x[row + ix]);
#else
            acc += x[row + ix];
#endif
        }
    }
#ifdef POOL_MAX
    y[i] = acc;
#else
    y[i] = acc / float(max(ny * nx, 1));
#endif
}
