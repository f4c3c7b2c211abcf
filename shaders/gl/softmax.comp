// Softmax / LogSoftmax along one axis of an (outer, L, inner) layout: per (outer, inner) line,
// three passes (max, sum of exponentials, write). Serial: one invocation per line.
// WORKGROUP: 64 invocations per line reduce in shared memory (long lines: faster, and the sum
// of thousands of terms is accumulated as 64 short partial sums instead of one long one).

#ifdef WORKGROUP
layout(local_size_x = 64) in;
shared float partial[64];
#else
layout(local_size_x = 128) in;
#endif
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

uniform int u_n;           // lines: outer * inner
uniform int u_len;         // L
uniform int u_inner;

#ifdef WORKGROUP
const int STEP = 64;

float line_reduce(float v, bool is_max) {
    int t = int(gl_LocalInvocationID.x);
    barrier();  // earlier readers of partial[0] are done
    partial[t] = v;
    for (int s = 32; s > 0; s = s / 2) {
        memoryBarrierShared();
        barrier();
        if (t < s) {
            partial[t] = is_max ? max(partial[t], partial[t + s]) : partial[t] + partial[t + s];
        }
    }
    memoryBarrierShared();
    barrier();
    return partial[0];
}
#else
const int STEP = 1;

float line_reduce(float v, bool is_max) {
    return v;
}
#endif

void main() {
#ifdef WORKGROUP
    int i = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    int first = int(gl_LocalInvocationID.x);
#else
    int i = flat_id();
    int first = 0;
#endif
    if (i >= u_n) {
        return;
    }
    ivec2 oi = divmod(i, u_inner);
    int base = oi.x * u_len * u_inner + oi.y;
    float mx = neg_inf();
    for (int j = first; j < u_len; j += STEP) {
        mx = max(mx, x[base + j * u_inner]);
    }
    mx = line_reduce(mx, true);
    float s = 0.0;
    for (int j = first; j < u_len; j += STEP) {
        s += exp(x[base + j * u_inner] - mx);
    }
    s = line_reduce(s, false);
#ifdef LOG_SOFTMAX
    float shift = mx + log(s);
    for (int j = first; j < u_len; j += STEP) {
        y[base + j * u_inner] = x[base + j * u_inner] - shift;
    }
#else
    float inv = 1.0 / s;
    for (int j = first; j < u_len; j += STEP) {
        y[base + j * u_inner] = exp(x[base + j * u_inner] - mx) * inv;
    }
#endif
}
