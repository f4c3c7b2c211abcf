// Matrix products. A work-item computes TM rows of its columns (the TM-wide inner loop is what
// the compiler vectorizes); neighbouring work-items take neighbouring columns (coalesced reads
// of the streamed operand) and share the TM-row operand.
#define TM 8

// Y[b, r, p] = act(sum_k W[r, k] X[b, k, p] + bias[r]), W packed [RB][K][TM] with rows
// zero-padded to RB*TM, bias [RB*TM]. X and Y are strided: (b, k, p) -> xo + b*sxb + k*sxk + p*sxp.
// Serves 1x1 convolutions (r: output channel, p: pixel) and MatMul by a constant matrix
// (r: output feature, p: row of the activations). Work-item (id, rb, b) computes the adjacent
// columns p = 2 * id and p + 1, as conv2d does.
__kernel void gemm_packed(__global const float* X, int xo, int sxb, int sxk, int sxp,
                          __global const float* W, __global const float* bias,
                          __global float* Y, int yo, int syb, int syr, int syp,
                          int R, int P, int K, int RB, int act, float act_a, float act_b) {
    int p0 = get_global_id(0) * 2, rb = get_global_id(1), b = get_global_id(2);
    if (p0 >= P || rb >= RB) return;
    int p1 = min(p0 + 1, P - 1);
    __global const float* x0 = X + xo + b * sxb + p0 * sxp;
    __global const float* x1 = X + xo + b * sxb + p1 * sxp;
    __global const float* w = W + rb * K * TM;
    float a0[TM], a1[TM];
    for (int i = 0; i < TM; i++) a0[i] = a1[i] = 0.0f;
    for (int k = 0; k < K; k++) {
        float v0 = x0[k * sxk], v1 = x1[k * sxk];
        for (int i = 0; i < TM; i++) {
            a0[i] += w[k * TM + i] * v0;
            a1[i] += w[k * TM + i] * v1;
        }
    }
    int r0 = rb * TM;
    __global float* y0 = Y + yo + b * syb + r0 * syr + p0 * syp;
    __global float* y1 = Y + yo + b * syb + r0 * syr + p1 * syp;
    for (int i = 0; i < TM && r0 + i < R; i++) {
        y0[i * syr] = unary_op(act, a0[i] + bias[r0 + i], act_a, act_b);
        y1[i * syr] = unary_op(act, a1[i] + bias[r0 + i], act_a, act_b);
    }
}

// Batched, broadcast MatMul / Gemm of two arbitrary strided operands:
// Y[z, m, n] = act(alpha * sum_k A[z, m, k] B[z, k, n] + beta * C[m*scm + n*scn]),
// z = z0*NB1 + z1 with A at ao + z0*sa0 + z1*sa1 + m*sam + k*sak (B likewise; 0 strides
// broadcast), Y contiguous. beta == 0: no C. Work-item (n, block of TM rows, z).
__kernel void matmul(__global const float* A, int ao, int sa0, int sa1, int sam, int sak,
                     __global const float* B, int bo, int sb0, int sb1, int sbk, int sbn,
                     __global float* Y, int yo, int M, int N, int K, int NB1, int NZ,
                     __global const float* C, int co, int scm, int scn, float alpha, float beta,
                     int act, float act_a, float act_b) {
    int n = get_global_id(0), m0 = get_global_id(1) * TM, z = get_global_id(2);
    if (n >= N || m0 >= M || z >= NZ) return;
    int rows = min(TM, M - m0);
    __global const float* a = A + ao + (z / NB1) * sa0 + (z % NB1) * sa1 + m0 * sam;
    __global const float* b = B + bo + (z / NB1) * sb0 + (z % NB1) * sb1 + n * sbn;
    int ra[TM];
    for (int i = 0; i < TM; i++) ra[i] = min(i, rows - 1) * sam;  // rows past M re-read the last
    float acc[TM];
    for (int i = 0; i < TM; i++) acc[i] = 0.0f;
    for (int k = 0; k < K; k++) {
        float v = b[k * sbk];
        for (int i = 0; i < TM; i++) acc[i] += a[ra[i] + k * sak] * v;
    }
    __global float* y = Y + yo + (z * M + m0) * N + n;
    for (int i = 0; i < rows; i++) {
        float r = alpha * acc[i];
        if (beta != 0.0f) r += beta * C[co + (m0 + i) * scm + n * scn];
        y[i * N] = unary_op(act, r, act_a, act_b);
    }
}
