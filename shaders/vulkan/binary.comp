#version 450
#extension GL_GOOGLE_include_directive : require
// c = op(a, b) with broadcasting: the output's (collapsed) shape and each input's element
// strides per dim (0 along broadcast dims), up to 6 dims; NDIM is specialized.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int OP = 0;
layout(constant_id = 2) const int NDIM = 1;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer C { float c[]; };
layout(push_constant) uniform Params { uint n; uint shape[6]; uint sa[6]; uint sb[6]; } p;

// x ** y as ONNX (C's powf): a negative base with an integral exponent is defined.
float power(float x, float y) {
    if (y == 2.0) return x * x;
    if (y == 1.0) return x;
    if (y == 0.0) return 1.0;
    if (x == 0.0) return y > 0.0 ? 0.0 : 1.0 / 0.0;
    if (x > 0.0) return pow(x, y);
    if (y != floor(y)) return 0.0 / 0.0;
    float r = pow(-x, y);
    return mod(y, 2.0) == 1.0 ? -r : r;
}

float op(float x, float y) {
    switch (OP) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    case 4: return power(x, y);
    case 5: return max(x, y);
    case 6: return min(x, y);
    case 7: return x < 0.0 ? x * y : x;  // PRelu: y is the slope
    }
    return x;
}

void main() {
    uint i = flat_index();
    if (i >= p.n) return;
    uint ia = 0u, ib = 0u, r = i;
    for (int k = NDIM - 1; k >= 0; --k) {
        uint d = r % p.shape[k];
        r /= p.shape[k];
        ia += d * p.sa[k];
        ib += d * p.sb[k];
    }
    c[i] = op(a[ia], b[ib]);
}
