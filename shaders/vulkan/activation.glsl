// Unary ops and the fused activations of conv/matmul, by id (backends/vulkan/kernel.py OPS).
// The id is a specialization constant at every call site, so the switch folds away.
// Sigmoid and tanh are written through exp(-|x|): no overflow to inf/inf for large |x|.

float sigmoid_(float x) {
    float e = exp(-abs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

float tanh_(float x) {
    float e = exp(-2.0 * abs(x));
    float t = (1.0 - e) / (1.0 + e);
    return x >= 0.0 ? t : -t;
}

// Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7.
float erf_(float x) {
    float t = 1.0 / (1.0 + 0.3275911 * abs(x));
    float p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    float y = 1.0 - p * exp(-x * x);
    return x >= 0.0 ? y : -y;
}

float softplus_(float x) {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

float apply_op(int op, float x, float a, float b) {
    switch (op) {
    case 0: return x;
    case 1: return max(x, 0.0);
    case 2: return min(max(x, a), b);
    case 3: return sigmoid_(x);
    case 4: return x * sigmoid_(x);
    case 5: return x * clamp(x / 6.0 + 0.5, 0.0, 1.0);
    case 6: return x < 0.0 ? x * a : x;
    case 7: return clamp(a * x + b, 0.0, 1.0);
    case 8: return tanh_(x);
    case 9: return exp(x);
    case 10: return log(x);
    case 11: return sqrt(x);
    case 12: return erf_(x);
    case 13: return abs(x);
    case 14: return -x;
    case 15: return 1.0 / x;
    case 16: return x > 0.0 ? x : a * (exp(x) - 1.0);
    case 17: return softplus_(x);
    case 18: return floor(x);
    case 19: return ceil(x);
    case 20: return 0.5 * x * (1.0 + erf_(x * 0.70710678118654752));
    case 21: return 0.5 * x * (1.0 + tanh_(0.79788456080286536 * (x + 0.044715 * x * x * x)));
    case 22: return sin(x);
    case 23: return cos(x);
    case 24: return x / (1.0 + abs(x));
    case 25: return b * (x > 0.0 ? x : a * (exp(x) - 1.0));
    case 26: return max(x, 0.0) + min(0.0, a * (exp(x / a) - 1.0));
    case 27: return roundEven(x);
    case 28: return sign(x);
    case 29: return x * tanh_(softplus_(x));
    case 30: return x > a ? x : 0.0;
    }
    return x;
}
