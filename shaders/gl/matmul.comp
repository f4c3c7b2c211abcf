// Batched matrix product Y[b] = alpha * A[b] (M x K) B[b] (K x N) + beta * C, then the fused
// activation: MatMul (with the optimizer's bias over the last dim) and Gemm (transposes and C
// through strides). Batch dims broadcast through strides (0 on broadcast dims), up to 4.
// An invocation computes a 4 x 4 block of Y; rows/columns past the end are clamped, not stored.

layout(local_size_x = 16, local_size_y = 4) in;
#include "common.glsl"
#include "act.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
#ifdef BIAS
layout(std430, binding = 2) readonly buffer C { float bias[]; };
#endif
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

uniform ivec3 u_mkn;       // M, K, N
uniform ivec4 u_astr;      // A: row stride, k stride; B: k stride, column stride
uniform ivec2 u_cstr;      // C: row stride, column stride (0 where broadcast)
uniform vec2 u_scale;      // alpha, beta
uniform ivec4 u_batch;     // batch dims, padded with 1 in front
uniform ivec4 u_sa;        // A's element stride per batch dim
uniform ivec4 u_sb;        // B's element stride per batch dim

void main() {
    int m = u_mkn.x;
    int k = u_mkn.y;
    int n = u_mkn.z;
    int c0 = int(gl_GlobalInvocationID.x) * 4;
    int r0 = int(gl_GlobalInvocationID.y) * 4;
    if (c0 >= n || r0 >= m) {
        return;
    }
    int bz = int(gl_GlobalInvocationID.z);
    int ao = 0;
    int bo = 0;
    int rest = bz;
    for (int d = 3; d >= 0; d--) {
        int i = rest % u_batch[d];
        rest = rest / u_batch[d];
        ao += i * u_sa[d];
        bo += i * u_sb[d];
    }
    int a0 = ao + min(r0, m - 1) * u_astr.x;
    int a1 = ao + min(r0 + 1, m - 1) * u_astr.x;
    int a2 = ao + min(r0 + 2, m - 1) * u_astr.x;
    int a3 = ao + min(r0 + 3, m - 1) * u_astr.x;
    int b0 = bo + min(c0, n - 1) * u_astr.w;
    int b1 = bo + min(c0 + 1, n - 1) * u_astr.w;
    int b2 = bo + min(c0 + 2, n - 1) * u_astr.w;
    int b3 = bo + min(c0 + 3, n - 1) * u_astr.w;
    vec4 acc0 = vec4(0.0);
    vec4 acc1 = vec4(0.0);
    vec4 acc2 = vec4(0.0);
    vec4 acc3 = vec4(0.0);
    for (int i = 0; i < k; i++) {
        int bi = i * u_astr.z;
        int ai = i * u_astr.y;
        vec4 bv = vec4(b[b0 + bi], b[b1 + bi], b[b2 + bi], b[b3 + bi]);
        acc0 += a[a0 + ai] * bv;
        acc1 += a[a1 + ai] * bv;
        acc2 += a[a2 + ai] * bv;
        acc3 += a[a3 + ai] * bv;
    }
    vec4 acc[4] = vec4[4](acc0, acc1, acc2, acc3);
    int yo = bz * m * n;
    for (int j = 0; j < 4; j++) {
        for (int t = 0; t < 4; t++) {
            int r = r0 + j;
            int c = c0 + t;
            if (r < m && c < n) {
                float v = u_scale.x * acc[j][t];
#ifdef BIAS
                v += u_scale.y * bias[r * u_cstr.x + c * u_cstr.y];
#endif
                y[yo + r * n + c] = activate(v);
            }
        }
    }
}
