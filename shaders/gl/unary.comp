// y = f(x) elementwise; the op is chosen by a define OP_<name> (the names below are the ops
// the gl backend runs with this shader). u_a, u_b: the op's parameters (alpha, beta, bounds...).

layout(local_size_x = 128) in;
#include "common.glsl"
#include "math.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

uniform int u_n;
uniform float u_a;
uniform float u_b;

float op(float v) {
#if defined(OP_Relu)
    return max(v, 0.0);
#elif defined(OP_Sigmoid)
    return sigmoid_f(v);
#elif defined(OP_Tanh)
    return tanh_f(v);
#elif defined(OP_Exp)
    return exp(v);
#elif defined(OP_Log)
    return log(v);
#elif defined(OP_Sqrt)
    return sqrt(v);
#elif defined(OP_Erf)
    return erf_f(v);
#elif defined(OP_Abs)
    return abs(v);
#elif defined(OP_Neg)
    return -v;
#elif defined(OP_Reciprocal)
    return 1.0 / v;
#elif defined(OP_Floor)
    return floor(v);
#elif defined(OP_Ceil)
    return ceil(v);
#elif defined(OP_Round)
    return roundEven(v);
#elif defined(OP_Sign)
    return sign(v);
#elif defined(OP_HardSigmoid)
    return hard_sigmoid_f(v, u_a, u_b);
#elif defined(OP_HardSwish)
    return hard_swish_f(v);
#elif defined(OP_LeakyRelu)
    return v < 0.0 ? v * u_a : v;
#elif defined(OP_SiLU)
    return v * sigmoid_f(v);
#elif defined(OP_Gelu)
    return v * 0.5 * (1.0 + erf_f(v * 0.7071067811865476));
#elif defined(OP_GeluTanh)
    return v * 0.5 * (1.0 + tanh_f((v + v * v * v * 0.044715) * 0.7978845608028654));
#elif defined(OP_Elu)
    return v > 0.0 ? v : expm1_f(v) * u_a;
#elif defined(OP_Selu)
    return (v > 0.0 ? v : expm1_f(v) * u_a) * u_b;
#elif defined(OP_Celu)
    return max(v, 0.0) + min(expm1_f(min(v, 0.0) / u_a) * u_a, 0.0);
#elif defined(OP_Softplus)
    return softplus_f(v);
#elif defined(OP_Softsign)
    return v / (1.0 + abs(v));
#elif defined(OP_Mish)
    return v * tanh_f(softplus_f(v));
#elif defined(OP_ThresholdedRelu)
    return v > u_a ? v : 0.0;
#elif defined(OP_Clip)
    return min(max(v, u_a), u_b);
#elif defined(OP_Shrink)
    return v < -u_b ? v + u_a : (v > u_b ? v - u_a : 0.0);
#else
    return v;
#endif
}

void main() {
    int i = flat_id();
    if (i >= u_n) {
        return;
    }
    y[i] = op(x[i]);
}
