// The activation the optimizer fuses into Conv/ConvTranspose/MatMul, chosen by a define
// ACT_<name>; its parameters are uniforms (Clip bounds, LeakyRelu alpha, HardSigmoid alpha/beta).
#include "math.glsl"

uniform float u_act_a;
uniform float u_act_b;

float activate(float v) {
#if defined(ACT_Relu)
    return max(v, 0.0);
#elif defined(ACT_Clip)
    return min(max(v, u_act_a), u_act_b);
#elif defined(ACT_Sigmoid)
    return sigmoid_f(v);
#elif defined(ACT_SiLU)
    return v * sigmoid_f(v);
#elif defined(ACT_HardSwish)
    return hard_swish_f(v);
#elif defined(ACT_LeakyRelu)
    return v < 0.0 ? v * u_act_a : v;
#elif defined(ACT_HardSigmoid)
    return hard_sigmoid_f(v, u_act_a, u_act_b);
#elif defined(ACT_Tanh)
    return tanh_f(v);
#else
    return v;
#endif
}
