// Reduce* over any set of axes (and GlobalAverage/MaxPool). The host merges adjacent dims into
// kept and reduced groups (up to 4 each, padded with size 1 in front) with their input strides.
// Serial: one invocation per output. WORKGROUP: 64 invocations per output share the row.

#ifdef WORKGROUP
layout(local_size_x = 64) in;
shared float partial[64];
#else
layout(local_size_x = 128) in;
#endif
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

uniform int u_n;           // outputs
uniform int u_r;           // values reduced into each output
uniform ivec4 u_kdims;
uniform ivec4 u_kstr;
uniform ivec4 u_rdims;
uniform ivec4 u_rstr;

int offset_of(int i, ivec4 dims, ivec4 str) {
    int o = 0;
    for (int d = 3; d > 0; d--) {
        ivec2 qr = divmod(i, dims[d]);
        o += qr.y * str[d];
        i = qr.x;
    }
    return o + i * str[0];
}

float start(int kind) {
#if defined(REDUCE_Max) || defined(REDUCE_LogSumExp)
    if (kind == 1) {
        return neg_inf();
    }
#endif
#if defined(REDUCE_Max)
    return neg_inf();
#elif defined(REDUCE_Min)
    return pos_inf();
#elif defined(REDUCE_Prod)
    return 1.0;
#else
    return 0.0;
#endif
}

// kind 0: the op's own fold; kind 1: max (LogSumExp's first pass, shifted by its result).
float fold(int kind, float acc, float v, float shift) {
    if (kind == 1) {
        return max(acc, v);
    }
#if defined(REDUCE_Max)
    return max(acc, v);
#elif defined(REDUCE_Min)
    return min(acc, v);
#elif defined(REDUCE_Prod)
    return acc * v;
#elif defined(REDUCE_L1)
    return acc + abs(v);
#elif defined(REDUCE_L2) || defined(REDUCE_SumSquare)
    return acc + v * v;
#elif defined(REDUCE_LogSumExp)
    return acc + exp(v - shift);
#else  // REDUCE_Sum, REDUCE_Mean, REDUCE_LogSum
    return acc + v;
#endif
}

float merge(int kind, float p, float q) {
    if (kind == 1) {
        return max(p, q);
    }
#if defined(REDUCE_Max)
    return max(p, q);
#elif defined(REDUCE_Min)
    return min(p, q);
#elif defined(REDUCE_Prod)
    return p * q;
#else
    return p + q;
#endif
}

float reduce_row(int base, int kind, float shift) {
    float acc = start(kind);
#ifdef WORKGROUP
    int t = int(gl_LocalInvocationID.x);
    for (int j = t; j < u_r; j += 64) {
        acc = fold(kind, acc, x[base + offset_of(j, u_rdims, u_rstr)], shift);
    }
    barrier();  // an earlier call's readers of partial[0] are done
    partial[t] = acc;
    for (int s = 32; s > 0; s = s / 2) {
        memoryBarrierShared();
        barrier();
        if (t < s) {
            partial[t] = merge(kind, partial[t], partial[t + s]);
        }
    }
    memoryBarrierShared();
    barrier();
    return partial[0];
#else
    for (int j = 0; j < u_r; j++) {
        acc = fold(kind, acc, x[base + offset_of(j, u_rdims, u_rstr)], shift);
    }
    return acc;
#endif
}

void main() {
#ifdef WORKGROUP
    int o = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
#else
    int o = flat_id();
#endif
    if (o >= u_n) {
        return;
    }
    int base = offset_of(o, u_kdims, u_kstr);
    float shift = 0.0;
#if defined(REDUCE_LogSumExp)
    shift = reduce_row(base, 1, 0.0);
#endif
    float acc = reduce_row(base, 0, shift);
#if defined(REDUCE_Mean)
    acc = acc / float(u_r);
#elif defined(REDUCE_L2)
    acc = sqrt(acc);
#elif defined(REDUCE_LogSum)
    acc = log(acc);
#elif defined(REDUCE_LogSumExp)
    acc = shift + log(acc);
#endif
#ifdef WORKGROUP
    if (gl_LocalInvocationID.x == 0u) {
        y[o] = acc;
    }
#else
    y[o] = acc;
#endif
}
