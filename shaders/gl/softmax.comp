// Softmax / LogSoftmax along one axis of an (outer, L, inner) layout: one invocation per
// (outer, inner) line, three passes over it (max, sum of exponentials, write).

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

uniform int u_n;           // lines: outer * inner
uniform int u_len;         // L
uniform int u_inner;

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    int base = (i / u_inner) * u_len * u_inner + i % u_inner;
    float mx = neg_inf();
    for (int j = 0; j < u_len; j++) {
        mx = max(mx, x[base + j * u_inner]);
    }
    float s = 0.0;
    for (int j = 0; j < u_len; j++) {
        s += exp(x[base + j * u_inner] - mx);
    }
#ifdef LOG_SOFTMAX
    float shift = mx + log(s);
    for (int j = 0; j < u_len; j++) {
        y[base + j * u_inner] = x[base + j * u_inner] - shift;
    }
#else
    float inv = 1.0 / s;
    for (int j = 0; j < u_len; j++) {
        y[base + j * u_inner] = exp(x[base + j * u_inner] - mx) * inv;
    }
#endif
}
