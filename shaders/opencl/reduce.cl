// Reductions with one work-group per output (its size a power of two <= 256): Reduce*, Softmax,
// LayerNormalization. The R_* codes come from backends/opencl/base.py.
#define COMBINE_SUM 0
#define COMBINE_MAX 1
#define COMBINE_MIN 2
#define COMBINE_PROD 3

float combine(int how, float a, float b) {
    switch (how) {
    case COMBINE_MAX: return fmax(a, b);
    case COMBINE_MIN: return fmin(a, b);
    case COMBINE_PROD: return a * b;
    default: return a + b;
    }
}

float identity_of(int how) {
    return how == COMBINE_MAX ? -INFINITY : how == COMBINE_MIN ? INFINITY : how == COMBINE_PROD ? 1.0f : 0.0f;
}

// Every work-item of the group must call it; all get the result.
float group_reduce(__local float* part, float v, int how) {
    int t = get_local_id(0);
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous call's readers are done with part[0]
    part[t] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = get_local_size(0) / 2; s > 0; s /= 2) {
        if (t < s) part[t] = combine(how, part[t], part[t + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return part[0];
}

int combiner(int op) {
    return op == R_MAX ? COMBINE_MAX : op == R_MIN ? COMBINE_MIN : op == R_PROD ? COMBINE_PROD : COMBINE_SUM;
}

float reduce_pre(int op, float v, float m) {
    switch (op) {
    case R_L1: return fabs(v);
    case R_L2: case R_SUMSQUARE: return v * v;
    case R_LOGSUMEXP: return exp(v - m);
    default: return v;
    }
}

float reduce_post(int op, float s, float m, int n) {
    switch (op) {
    case R_MEAN: return s / (float)n;
    case R_L2: return sqrt(s);
    case R_LOGSUM: return log(s);
    case R_LOGSUMEXP: return log(s) + m;
    default: return s;
    }
}

// Output o (group (0, o)) splits into kept indices (k0, k1, k2) of sizes (., K1, K2) with input
// strides ks*; the reduced index r < R into (r0, r1, r2) of sizes (., R1, R2) with strides rs*.
__kernel void reduce(__global const float* X, int xo, __global float* Y, int yo,
                     int K1, int K2, int ks0, int ks1, int ks2,
                     int R1, int R2, int rs0, int rs1, int rs2, int R, int op) {
    __local float part[256];
    int t = get_local_id(0), ls = get_local_size(0), o = get_group_id(1);
    int base = xo + o / (K1 * K2) * ks0 + (o / K2) % K1 * ks1 + o % K2 * ks2;
    int how = combiner(op);
    float m = 0.0f;
    if (op == R_LOGSUMEXP) {  // shift by the max for range, as the CPU kernel does
        float v = -INFINITY;
        for (int r = t; r < R; r += ls)
            v = fmax(v, X[base + r / (R1 * R2) * rs0 + (r / R2) % R1 * rs1 + r % R2 * rs2]);
        m = group_reduce(part, v, COMBINE_MAX);
        m = isfinite(m) ? m : 0.0f;
    }
    float acc = identity_of(how);
    for (int r = t; r < R; r += ls) {
        float v = X[base + r / (R1 * R2) * rs0 + (r / R2) % R1 * rs1 + r % R2 * rs2];
        acc = combine(how, acc, reduce_pre(op, v, m));
    }
    acc = group_reduce(part, acc, how);
    if (t == 0) Y[yo + o] = reduce_post(op, acc, m, R);
}

// Softmax (or LogSoftmax) along an axis of length L and stride `inner`: group (0, line) for
// line = outer*inner + i.
__kernel void softmax(__global const float* X, int xo, __global float* Y, int yo,
                      int L, int inner, int log_out) {
    __local float part[256];
    int t = get_local_id(0), ls = get_local_size(0), line = get_group_id(1);
    int base = line / inner * L * inner + line % inner;
    __global const float* x = X + xo + base;
    __global float* y = Y + yo + base;
    float m = -INFINITY;
    for (int i = t; i < L; i += ls) m = fmax(m, x[i * inner]);
    m = group_reduce(part, m, COMBINE_MAX);
    float s = 0.0f;
    for (int i = t; i < L; i += ls) s += exp(x[i * inner] - m);
    s = group_reduce(part, s, COMBINE_SUM);
    float ls_ = log(s);
    for (int i = t; i < L; i += ls)
        y[i * inner] = log_out ? x[i * inner] - m - ls_ : exp(x[i * inner] - m) / s;
}

// LayerNormalization over rows of `inner` elements: group (0, row). Scale S and bias B have
// `inner` elements (has_bias == 0: no bias).
__kernel void layernorm(__global const float* X, int xo, __global float* Y, int yo,
                        __global const float* S, int so, __global const float* B, int bo,
                        int inner, float eps, int has_bias) {
    __local float part[256];
    int t = get_local_id(0), ls = get_local_size(0), row = get_group_id(1);
    __global const float* x = X + xo + row * inner;
    __global float* y = Y + yo + row * inner;
    float s = 0.0f;
    for (int j = t; j < inner; j += ls) s += x[j];
    float mean = group_reduce(part, s, COMBINE_SUM) / (float)inner;
    float v = 0.0f;
    for (int j = t; j < inner; j += ls) v += (x[j] - mean) * (x[j] - mean);
    float rstd = 1.0f / sqrt(group_reduce(part, v, COMBINE_SUM) / (float)inner + eps);
    for (int j = t; j < inner; j += ls)
        y[j] = (x[j] - mean) * rstd * S[so + j] + (has_bias ? B[bo + j] : 0.0f);
}
