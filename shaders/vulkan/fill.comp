#version 450
#extension GL_GOOGLE_include_directive : require
// y[i] = value: the constant background of a padded raster.
layout(local_size_x_id = 0) in;
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint n; float value; } p;

void main() {
    uint i = flat_index();
    if (i < p.n) y[i] = p.value;
}
