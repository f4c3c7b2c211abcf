// A workgroup of 64 invocations combining one value each (shared-memory tree).
// HOW: 0 sum, 1 max, 2 min, 3 product. Call from uniform control flow only (barriers).
shared float red[64];

float merge(float u, float v, int how) {
    if (how == 1) return max(u, v);
    if (how == 2) return min(u, v);
    if (how == 3) return u * v;
    return u + v;
}

float group_reduce(float v, int how) {
    uint lid = gl_LocalInvocationID.x;
    red[lid] = v;
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) red[lid] = merge(red[lid], red[lid + s], how);
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}
