// Data movement (MNN's raster): every layout op is a fill and/or strided region copies.
// Elements are moved as 32-bit words, so float32 and int32 tensors share the kernels.

__kernel void fill(__global uint* y, int yo, int n, uint v) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = v;
}

// y[yo + i3*t3 + i4*t4 + i5*t5] = x[xo + i3*s3 + i4*s4 + i5*s5] over the box d3 x d4 x d5, one
// work-item per element: grid (d5, d4, d3). No loops and no integer division in the body: on
// PoCL either one costs more than the copy itself (it stops vectorization across work-items).
__kernel void raster(__global const uint* x, int xo, __global uint* y, int yo,
                     int d3, int d4, int d5, int s3, int s4, int s5, int t3, int t4, int t5) {
    int i5 = get_global_id(0), i4 = get_global_id(1), i3 = get_global_id(2);
    if (i5 < d5 && i4 < d4 && i3 < d3)
        y[yo + i3 * t3 + i4 * t4 + i5 * t5] = x[xo + i3 * s3 + i4 * s4 + i5 * s5];
}

// The same over up to six dims d0 x .. x d5, the outer three looped in each work-item: for the
// rare regions that do not simplify to three dims.
__kernel void raster_nd(__global const uint* x, int xo, __global uint* y, int yo,
                        int d0, int d1, int d2, int d3, int d4, int d5,
                        int s0, int s1, int s2, int s3, int s4, int s5,
                        int t0, int t1, int t2, int t3, int t4, int t5) {
    int i5 = get_global_id(0), i4 = get_global_id(1), i3 = get_global_id(2);
    if (i5 >= d5 || i4 >= d4 || i3 >= d3) return;
    int xb = xo + i3 * s3 + i4 * s4 + i5 * s5, yb = yo + i3 * t3 + i4 * t4 + i5 * t5;
    for (int i0 = 0; i0 < d0; i0++)
        for (int i1 = 0; i1 < d1; i1++)
            for (int i2 = 0; i2 < d2; i2++)
                y[yb + i0 * t0 + i1 * t1 + i2 * t2] = x[xb + i0 * s0 + i1 * s1 + i2 * s2];
}
