// y = a <op> b with numpy broadcasting. Dims are collapsed on the host and right-aligned in
// arrays of 6; a broadcast dim has stride 0. SAME_LAYOUT: a, b and y index alike (no strides);
// A_SCALAR / B_SCALAR: that operand is one value.

layout(local_size_x = 128) in;
#include "common.glsl"

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

uniform int u_n;
uniform int u_rank;
uniform int u_shape[6];
uniform int u_sa[6];
uniform int u_sb[6];

float pow_f(float p, float q) {
    if (q == 2.0) {
        return p * p;
    }
    if (q == 1.0) {
        return p;
    }
    if (q == 0.0) {
        return 1.0;
    }
    if (q == 0.5) {
        return sqrt(p);
    }
    if (p == 0.0) {
        return q > 0.0 ? 0.0 : pos_inf();
    }
    float r = exp2(q * log2(abs(p)));
    if (p < 0.0) {
        if (floor(q) != q) {
            return nan_f();
        }
        if (mod(q, 2.0) == 1.0) {
            r = -r;
        }
    }
    return r;
}

float op(float p, float q) {
#if defined(OP_Add)
    return p + q;
#elif defined(OP_Sub)
    return p - q;
#elif defined(OP_Mul)
    return p * q;
#elif defined(OP_Div)
    return p / q;
#elif defined(OP_Pow)
    return pow_f(p, q);
#elif defined(OP_Max)
    return max(p, q);
#elif defined(OP_Min)
    return min(p, q);
#elif defined(OP_PRelu)
    return p < 0.0 ? p * q : p;
#else
    return p;
#endif
}

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
#if defined(SAME_LAYOUT)
    y[i] = op(a[i], b[i]);
#elif defined(A_SCALAR)
    y[i] = op(a[0], b[i]);
#elif defined(B_SCALAR)
    y[i] = op(a[i], b[0]);
#else
    int r = i;
    int ia = 0;
    int ib = 0;
    for (int d = 5; d > 6 - u_rank; d--) {
        ivec2 qr = divmod(r, u_shape[d]);
        r = qr.x;
        ia += qr.y * u_sa[d];
        ib += qr.y * u_sb[d];
    }
    ia += r * u_sa[6 - u_rank];  // the outermost dim needs no division
    ib += r * u_sb[6 - u_rank];
    y[i] = op(a[ia], b[ib]);
#endif
}
