#version 450
#extension GL_GOOGLE_include_directive : require
// One region copy of MNN's raster (engine/geometry.py): for every index i over `size`,
// dst[doff + sum(i[k] * ds[k])] = src[soff + sum(i[k] * ss[k])], in elements; strides may be
// 0 (broadcast) or negative (reversed slices). NDIM (<= 6) is specialized.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int NDIM = 1;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 1) writeonly buffer Dst { float dst[]; };
layout(push_constant) uniform Params {
    uint n;
    uint size[6];
    int soff, ss[6], doff, ds[6];
} p;

void main() {
    uint i = flat_index();
    if (i >= p.n) return;
    int si = p.soff, di = p.doff;
    uint r = i;
    for (int k = NDIM - 1; k >= 0; --k) {
        int d = int(r % p.size[k]);
        r /= p.size[k];
        si += d * p.ss[k];
        di += d * p.ds[k];
    }
    dst[di] = src[si];
}
