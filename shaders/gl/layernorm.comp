// LayerNormalization over the trailing N values of each row: a workgroup of 64 per row sums
// in shared memory (mean, then the variance of the centred values), then writes.

layout(local_size_x = 64) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer S { float scale[]; };
#ifdef BIAS
layout(std430, binding = 2) readonly buffer B { float bias[]; };
#endif
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

uniform int u_rows;
uniform int u_len;         // N
uniform float u_eps;

shared float partial[64];

float row_sum(float v) {
    int t = int(gl_LocalInvocationID.x);
    barrier();
    partial[t] = v;
    for (int s = 32; s > 0; s = s / 2) {
        memoryBarrierShared();
        barrier();
        if (t < s) {
            partial[t] += partial[t + s];
        }
    }
    memoryBarrierShared();
    barrier();
    return partial[0];
}

void main() {
    int row = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
    if (row >= u_rows) {
        return;
    }
    int t = int(gl_LocalInvocationID.x);
    int base = row * u_len;
    float s = 0.0;
    for (int j = t; j < u_len; j += 64) {
        s += x[base + j];
    }
    float mean = row_sum(s) / float(u_len);
    float q = 0.0;
    for (int j = t; j < u_len; j += 64) {
        float d = x[base + j] - mean;
        q += d * d;
    }
    float inv = 1.0 / sqrt(row_sum(q) / float(u_len) + u_eps);
    for (int j = t; j < u_len; j += 64) {
#ifdef BIAS
        y[base + j] = (x[base + j] - mean) * inv * scale[j] + bias[j];
#else
        y[base + j] = (x[base + j] - mean) * inv * scale[j];
#endif
    }
}
