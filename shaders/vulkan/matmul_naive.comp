#version 450
#extension GL_GOOGLE_include_directive : require
// Matrix multiply for thin shapes (few rows or columns, e.g. a classifier's 1 x K @ K x N),
// where a 64x64 tile would idle most of its invocations: one output per invocation.
layout(local_size_x_id = 0) in;
#include "common.glsl"
#include "matmul.glsl"

void main() {
    uint i = flat_index(), z = gl_WorkGroupID.z;
    if (i >= p.m * p.n) return;
    uint row = i / p.n, col = i % p.n;
    uvec2 off = batch_offsets(z);
    uint ai = off.x + row * p.k, bi = off.y + col;
    float acc = 0.0;
    for (uint kk = 0u; kk < p.k; ++kk) acc += a[ai + kk] * b[bi + kk * p.n];
    store(z, row, col, acc);
}
