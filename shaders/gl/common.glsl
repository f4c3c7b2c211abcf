// Helpers every shader shares. Written in the GLSL subset that is also GLSL ES 3.10:
// no implicit int<->uint or int->float conversions. Include it after the local_size layout:
// flat_id() reads gl_WorkGroupSize.

// The invocation's index over a grid whose x dimension may be capped (see dispatch.grid).
int flat_id() {
    return int(gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x + gl_GlobalInvocationID.x);
}

float neg_inf() {
    return uintBitsToFloat(0xff800000u);
}

float pos_inf() {
    return uintBitsToFloat(0x7f800000u);
}

float nan_f() {
    return uintBitsToFloat(0x7fc00000u);
}

// (i / d, i % d) for 0 <= i, 0 < d without integer division, which SIMD CPUs (llvmpipe)
// scalarize and GPUs emulate in many instructions: a float estimate, refined once from the
// remainder (its error is then below one), and a last +-1 correction. Exact for every int.
ivec2 divmod(int i, int d) {
    float inv = 1.0 / float(d);
    int q = int(float(i) * inv);
    q += int(floor(float(i - q * d) * inv));
    int r = i - q * d;
    if (r < 0) {
        q -= 1;
        r += d;
    } else if (r >= d) {
        q += 1;
        r -= d;
    }
    return ivec2(q, r);
}
