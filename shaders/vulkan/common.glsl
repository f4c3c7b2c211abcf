// Shared by every shader. 1-D grids larger than the device's x limit are folded into y
// (kernel.grid); this undoes the fold. Invocations past the end return early.
uint flat_index() {
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}

// Flat workgroup index of a grid of workgroups folded the same way.
uint flat_group() {
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}
