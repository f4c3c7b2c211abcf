// One region copy (engine/geometry.py): for every index i of a box of up to 6 dims,
// dst[dst_offset + sum i_k * dst_stride_k] = src[src_offset + sum i_k * src_stride_k].
// Values are copied as raw 32-bit words, so any 4-byte dtype moves bit-exactly.

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Src { uint src[]; };
layout(std430, binding = 1) writeonly buffer Dst { uint dst[]; };

uniform int u_n;           // elements in the box
uniform int u_rank;        // dims used, right-aligned in the arrays
uniform int u_size[6];
uniform int u_ss[6];
uniform int u_ds[6];
uniform ivec2 u_offsets;   // src, dst (elements)

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    int r = i;
    int s = u_offsets.x;
    int d = u_offsets.y;
    for (int k = 5; k > 6 - u_rank; k--) {
        ivec2 qr = divmod(r, u_size[k]);
        r = qr.x;
        s += qr.y * u_ss[k];
        d += qr.y * u_ds[k];
    }
    s += r * u_ss[6 - u_rank];  // the outermost dim needs no division
    d += r * u_ds[6 - u_rank];
    dst[d] = src[s];
}
