#version 450
#extension GL_GOOGLE_include_directive : require
// Matrix multiply for shapes that would leave 64x64 tiles mostly empty (a classifier's
// 1 x K @ K x N, few rows or columns): no shared memory, each invocation computes a 4x4 block
// of C in registers (4 loads of A and 4 of B feed 16 multiply-adds), column blocks fastest.
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "matmul.glsl"

void main() {
    uint i = flat_index(), z = gl_WorkGroupID.z;
    uint ncb = (p.n + 3u) / 4u;
    if (i >= ncb * ((p.m + 3u) / 4u)) return;
    uint r0 = (i / ncb) * 4u, c0 = (i % ncb) * 4u;
    uvec2 off = batch_offsets(z);
    float acc[4][4];
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.0;
    for (uint kk = 0u; kk < p.k; ++kk) {
        float av[4], bv[4];
        for (uint r = 0u; r < 4u; ++r) av[r] = r0 + r < p.m ? a[off.x + (r0 + r) * p.k + kk] : 0.0;
        for (uint c = 0u; c < 4u; ++c) bv[c] = c0 + c < p.n ? b[off.y + kk * p.n + c0 + c] : 0.0;
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) acc[r][c] += av[r] * bv[c];
    }
    for (uint r = 0u; r < 4u; ++r)
        for (uint c = 0u; c < 4u; ++c)
            if (r0 + r < p.m && c0 + c < p.n) store(z, r0 + r, c0 + c, acc[r][c]);
}
