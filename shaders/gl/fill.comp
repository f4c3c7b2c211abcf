// dst[i] = value (a raw 32-bit word) for i < u_n: the padding of Pad before its region copy.

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Dst { uint dst[]; };

uniform int u_n;
uniform uint u_value;

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    dst[i] = u_value;
}
