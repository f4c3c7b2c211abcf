// y = x * scale[c] + shift[c] over an (outer, C, inner) layout: inference BatchNormalization.

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer S { float scale[]; };
layout(std430, binding = 2) readonly buffer T { float shift[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

uniform int u_n;
uniform int u_c;
uniform int u_inner;

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    int c = divmod(divmod(i, u_inner).x, u_c).y;
    y[i] = x[i] * scale[c] + shift[c];
}
