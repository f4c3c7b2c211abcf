#version 450
#extension GL_GOOGLE_include_directive : require
// y = op(x) elementwise; op is a specialization constant, its parameters push constants.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int OP = 0;
#include "common.glsl"
#include "activation.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Params { uint n; float a; float b; } p;

void main() {
    uint i = flat_index();
    if (i >= p.n) return;
    y[i] = apply_op(OP, x[i], p.a, p.b);
}
