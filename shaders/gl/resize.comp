// Separable resize of the last two axes: per output row and column, TAPS source indices and
// weights from tables computed on the host (the CPU backend's coordinate rules, so nearest
// neighbours tie-break the same way). Table layout (floats): row indices [OH*TAPS], row weights
// [OH*TAPS], column indices [OW*TAPS], column weights [OW*TAPS].

#ifndef TAPS
#define TAPS 1
#endif

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer T { float table[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

uniform int u_n;           // output values
uniform ivec2 u_in;        // H, W
uniform ivec2 u_out;       // OH, OW

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    ivec2 row = divmod(i, u_out.y);
    ivec2 col = divmod(row.x, u_out.x);
    int ox = row.y;
    int oy = col.y;
    int plane = col.x;
    int base = plane * u_in.x * u_in.y;
    int cols = 2 * u_out.x * TAPS;
    float acc = 0.0;
    for (int ty = 0; ty < TAPS; ty++) {
        int iy = int(table[oy * TAPS + ty]);
        float wy = table[u_out.x * TAPS + oy * TAPS + ty];
        int row = base + iy * u_in.y;
        float racc = 0.0;
        for (int tx = 0; tx < TAPS; tx++) {
            int ix = int(table[cols + ox * TAPS + tx]);
            float wx = table[cols + u_out.y * TAPS + ox * TAPS + tx];
            racc += wx * x[row + ix];
        }
        acc += wy * racc;
    }
    y[i] = acc;
}
