// Elementwise functions shared by the unary kernel and the fused activations, written to stay
// accurate (and overflow-free) where GLSL's built-ins are loose or undefined.

float sigmoid_f(float v) {
    float e = exp(-abs(v));  // never overflows
    return v >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

float tanh_f(float v) {
    float e = exp(-2.0 * abs(v));
    float t = (1.0 - e) / (1.0 + e);
    return v < 0.0 ? -t : t;
}

// log(1 + exp(v)) without overflow.
float softplus_f(float v) {
    return max(v, 0.0) + log(1.0 + exp(-abs(v)));
}

// exp(v) - 1, accurate near 0 (where Elu/Selu/Celu are evaluated for small negative v).
float expm1_f(float v) {
    if (abs(v) < 1e-3) {
        return v + 0.5 * v * v + v * v * v / 6.0;
    }
    return exp(v) - 1.0;
}

// Minimax rational approximation of erf on [-4, 4]; erf is +-1 in float32 beyond.
float erf_f(float v) {
    float t = clamp(v, -4.0, 4.0);
    float t2 = t * t;
    float p = -2.72614225801306e-10;
    p = p * t2 + 2.77068142495902e-08;
    p = p * t2 - 2.10102402082508e-06;
    p = p * t2 - 5.69250639462346e-05;
    p = p * t2 - 7.34990630326855e-04;
    p = p * t2 - 2.95459980854025e-03;
    p = p * t2 - 1.60960333262415e-02;
    float q = -1.45660718464996e-05;
    q = q * t2 - 2.13374055278905e-04;
    q = q * t2 - 1.68282697438203e-03;
    q = q * t2 - 7.37332916720468e-03;
    q = q * t2 - 1.42647390514189e-02;
    return t * p / q;
}

float hard_sigmoid_f(float v, float alpha, float beta) {
    return clamp(v * alpha + beta, 0.0, 1.0);
}

float hard_swish_f(float v) {
    return v * clamp(v * (1.0 / 6.0) + 0.5, 0.0, 1.0);
}
