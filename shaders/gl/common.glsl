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
