// Elementwise kernels: unary ops, broadcast binary ops, per-channel affine (BatchNormalization).

__kernel void unary(__global const float* x, int xo, __global float* y, int yo, int n,
                    int op, float a, float b) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = unary_op(op, x[xo + i], a, b);
}

// y = op(A, B) over the output box d3 x d4 x d5 (y contiguous); the strides of A (a*) and B
// (b*) are 0 along broadcast dims. Grid (d5, d4, d3): no loops or divisions (see raster.cl).
__kernel void binary(__global const float* A, int ao, __global const float* B, int bo,
                     __global float* y, int yo, int op, int d3, int d4, int d5,
                     int a3, int a4, int a5, int b3, int b4, int b5) {
    int i5 = get_global_id(0), i4 = get_global_id(1), i3 = get_global_id(2);
    if (i5 < d5 && i4 < d4 && i3 < d3)
        y[yo + (i3 * d4 + i4) * d5 + i5] = binary_op(op, A[ao + i3 * a3 + i4 * a4 + i5 * a5],
                                                     B[bo + i3 * b3 + i4 * b4 + i5 * b5]);
}

// The same over up to six dims d0 x .. x d5, the outer three looped in each work-item.
__kernel void binary_nd(__global const float* A, int ao, __global const float* B, int bo,
                        __global float* y, int yo, int op,
                        int d0, int d1, int d2, int d3, int d4, int d5,
                        int a0, int a1, int a2, int a3, int a4, int a5,
                        int b0, int b1, int b2, int b3, int b4, int b5) {
    int i5 = get_global_id(0), i4 = get_global_id(1), i3 = get_global_id(2);
    if (i5 >= d5 || i4 >= d4 || i3 >= d3) return;
    int ab = ao + i3 * a3 + i4 * a4 + i5 * a5, bb = bo + i3 * b3 + i4 * b4 + i5 * b5;
    int inner = (i3 * d4 + i4) * d5 + i5, block = d3 * d4 * d5;
    for (int i0 = 0; i0 < d0; i0++)
        for (int i1 = 0; i1 < d1; i1++)
            for (int i2 = 0; i2 < d2; i2++)
                y[yo + ((i0 * d1 + i1) * d2 + i2) * block + inner] = binary_op(op,
                    A[ab + i0 * a0 + i1 * a1 + i2 * a2], B[bb + i0 * b0 + i1 * b1 + i2 * b2]);
}

// y[r][i] = x[r][i] * s[r % C] + t[r % C] over rows r = n * C + c of `inner` elements.
__kernel void channel_affine(__global const float* x, int xo, __global float* y, int yo,
                             __global const float* s, __global const float* t,
                             int C, int inner, int rows) {
    int i = get_global_id(0), r = get_global_id(1);
    if (i >= inner || r >= rows) return;
    int c = r % C;
    y[yo + r * inner + i] = x[xo + r * inner + i] * s[c] + t[c];
}
