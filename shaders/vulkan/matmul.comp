#version 450
#extension GL_GOOGLE_include_directive : require
// Tiled matrix multiply: a 16x16 workgroup computes a 64x64 tile of C, each invocation a 4x4
// block (rows ty + 16i, columns tx + 16j), stepping K by 16 through shared-memory tiles of A
// and B that the workgroup loads together (out-of-range elements load as 0).
layout(local_size_x = 16, local_size_y = 16) in;
#include "matmul.glsl"

shared float As[16][64];  // [k][row]
shared float Bs[16][64];  // [k][col]

void main() {
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint t = ty * 16u + tx;
    uint m0 = gl_WorkGroupID.y * 64u, n0 = gl_WorkGroupID.x * 64u, z = gl_WorkGroupID.z;
    uvec2 off = batch_offsets(z);
    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0;
    for (uint k0 = 0u; k0 < p.k; k0 += 16u) {
        for (uint l = 0u; l < 4u; ++l) {
            uint e = t + l * 256u;
            uint ar = e / 16u, ak = e % 16u;  // A tile: 64 rows x 16 k, read along k
            uint row = m0 + ar, kk = k0 + ak;
            As[ak][ar] = (row < p.m && kk < p.k) ? a[off.x + row * p.k + kk] : 0.0;
            uint bk = e / 64u, bc = e % 64u;  // B tile: 16 k x 64 columns, read along columns
            uint col = n0 + bc;
            kk = k0 + bk;
            Bs[bk][bc] = (col < p.n && kk < p.k) ? b[off.y + kk * p.n + col] : 0.0;
        }
        barrier();
        for (uint kk = 0u; kk < 16u; ++kk) {
            float av[4], bv[4];
            for (uint i = 0u; i < 4u; ++i) av[i] = As[kk][ty + 16u * i];
            for (uint j = 0u; j < 4u; ++j) bv[j] = Bs[kk][tx + 16u * j];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
        }
        barrier();
    }
    for (uint i = 0u; i < 4u; ++i) {
        uint row = m0 + ty + 16u * i;
        if (row >= p.m) continue;
        for (uint j = 0u; j < 4u; ++j) {
            uint col = n0 + tx + 16u * j;
            if (col < p.n) store(z, row, col, acc[i][j]);
        }
    }
}
