// Data movement (MNN's raster): every layout op is a fill and/or strided region copies.
// Elements are moved as 32-bit words, so float32 and int32 tensors share the kernels.

__kernel void fill(__global uint* y, int yo, int n, uint v) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = v;
}

// y[yo + sum(i_k * t_k)] = x[xo + sum(i_k * s_k)] for i in the box d0 x .. x d5 (d5 innermost).
// Grid: (d5, d4, d0 * d1 * d2 * d3 = nz).
__kernel void raster(__global const uint* x, int xo, __global uint* y, int yo,
                     int d1, int d2, int d3, int d4, int d5, int nz,
                     int s0, int s1, int s2, int s3, int s4, int s5,
                     int t0, int t1, int t2, int t3, int t4, int t5) {
    int i5 = get_global_id(0), i4 = get_global_id(1), z = get_global_id(2);
    if (i5 >= d5 || i4 >= d4 || z >= nz) return;
    int i3 = z % d3; z /= d3;
    int i2 = z % d2; z /= d2;
    int i1 = z % d1, i0 = z / d1;
    y[yo + i0 * t0 + i1 * t1 + i2 * t2 + i3 * t3 + i4 * t4 + i5 * t5] =
        x[xo + i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3 + i4 * s4 + i5 * s5];
}
