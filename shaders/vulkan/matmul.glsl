// Bindings, parameters and epilogue shared by matmul.comp (tiled) and matmul_small.comp.
// C[z] = A[z] (M x K) @ B[z] (K x N), row-major; batch z (the z workgroup) decomposes over up
// to 4 collapsed batch dims, each with its element stride in A and in B (0 when broadcast);
// C is contiguous. BIAS: 0 none, 1 one per column (MatMul's bias), 2 one per row (1x1 Conv).
layout(constant_id = 1) const int ACT = 0;
layout(constant_id = 2) const int BIAS = 0;
#include "activation.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer C { float c[]; };
layout(push_constant) uniform Params {
    uint m, n, k, nbatch;
    uint bshape[4], sa[4], sb[4];
    float alpha, beta;
} p;

uvec2 batch_offsets(uint z) {
    uvec2 off = uvec2(0u);
    for (int d = 3; d >= 0; --d) {
        uint i = z % p.bshape[d];
        z /= p.bshape[d];
        off += i * uvec2(p.sa[d], p.sb[d]);
    }
    return off;
}

void store(uint z, uint row, uint col, float v) {
    if (BIAS == 1) v += bias[col];
    if (BIAS == 2) v += bias[row];
    c[(z * p.m + row) * p.n + col] = apply_op(ACT, v, p.alpha, p.beta);
}
