// Pooling, NCHW. Work-item (p, plane): output pixel p of plane n*C + c.

// is_max: max over the taps inside the input (padding never wins). Otherwise the average of
// the taps inside the input, divided by the number of taps inside [ylo, yhi) x [xlo, xhi):
// the input itself, or input plus pads when count_include_pad.
__kernel void pool2d(__global const float* X, int xo, __global float* Y, int yo,
                     int H, int IW, int OH, int OW, int planes, int KH, int KW,
                     int sh, int sw, int ph, int pw, int dh, int dw, int is_max,
                     int ylo, int yhi, int xlo, int xhi) {
    int p = get_global_id(0), q = get_global_id(1);
    if (p >= OH * OW || q >= planes) return;
    int oy = p / OW, ox = p - oy * OW;
    int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    __global const float* x = X + xo + q * H * IW;
    float acc = is_max ? -INFINITY : 0.0f;
    int ny = 0, nx = 0;
    for (int ky = 0; ky < KH; ky++) {
        int iy = iy0 + ky * dh;
        ny += iy >= ylo && iy < yhi;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < KW; kx++) {
            int ix = ix0 + kx * dw;
            if (ix < 0 || ix >= IW) continue;
            float v = x[iy * IW + ix];
            acc = is_max ? fmax(acc, v) : acc + v;
        }
    }
    if (!is_max) {
        for (int kx = 0; kx < KW; kx++) {
            int ix = ix0 + kx * dw;
            nx += ix >= xlo && ix < xhi;
        }
        acc /= (float)max(ny * nx, 1);
    }
    Y[yo + q * OH * OW + p] = acc;
}

// Global average / max over HW elements of each plane: one work-group (LS <= 256, a power of
// two) per plane, a strided pass then a tree in local memory.
__kernel void global_pool(__global const float* X, int xo, __global float* Y, int yo,
                          int HW, int is_max) {
    __local float part[256];
    int t = get_local_id(0), ls = get_local_size(0), q = get_group_id(1);
    __global const float* x = X + xo + q * HW;
    float acc = is_max ? -INFINITY : 0.0f;
    for (int i = t; i < HW; i += ls) acc = is_max ? fmax(acc, x[i]) : acc + x[i];
    part[t] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s /= 2) {
        if (t < s) part[t] = is_max ? fmax(part[t], part[t + s]) : part[t] + part[t + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (t == 0) Y[yo + q] = is_max ? part[0] : part[0] / (float)HW;
}
