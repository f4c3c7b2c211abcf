// Elementwise kernels: unary ops, broadcast binary ops, per-channel affine (BatchNormalization).

__kernel void unary(__global const float* x, int xo, __global float* y, int yo, int n,
                    int op, float a, float b) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = unary_op(op, x[xo + i], a, b);
}

// y = op(A, B) over the output box d0 x .. x d5 (d5 innermost, y contiguous); the strides of
// A (a*) and B (b*) are 0 along broadcast dims. Grid: (d5, d4, d0 * d1 * d2 * d3 = nz).
__kernel void binary(__global const float* A, int ao, __global const float* B, int bo,
                     __global float* y, int yo, int op,
                     int d1, int d2, int d3, int d4, int d5, int nz,
                     int a0, int a1, int a2, int a3, int a4, int a5,
                     int b0, int b1, int b2, int b3, int b4, int b5) {
    int i5 = get_global_id(0), i4 = get_global_id(1), z = get_global_id(2);
    if (i5 >= d5 || i4 >= d4 || z >= nz) return;
    int zz = z;
    int i3 = zz % d3; zz /= d3;
    int i2 = zz % d2; zz /= d2;
    int i1 = zz % d1, i0 = zz / d1;
    float va = A[ao + i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3 + i4 * a4 + i5 * a5];
    float vb = B[bo + i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3 + i4 * b4 + i5 * b5];
    y[yo + (z * d4 + i4) * d5 + i5] = binary_op(op, va, vb);
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
