// Depthwise convolution (groups == input channels C, `mult` output channels per input
// channel), NCHW. The program is built per kernel size (-D KH=.. -D KW=..): with constant taps
// the loops unroll, about twice as fast on PoCL as runtime bounds. Work-item (ox, oy, plane)
// with plane = n*C*mult + m; W (C*mult, 1, KH, KW) as in the model, bias [C*mult]. A window
// inside the input reads straight; at the border, taps in the padding read a valid address and
// are masked to 0, so neither loop body branches.
__kernel void conv_dw(__global const float* X, int xo, __global const float* W,
                      __global const float* bias, __global float* Y, int yo,
                      int C, int mult, int H, int IW, int OH, int OW,
                      int sh, int sw, int ph, int pw, int dh, int dw,
                      int act, float act_a, float act_b) {
    int ox = get_global_id(0), oy = get_global_id(1), q = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    int m = q % (C * mult);
    int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    __global const float* x = X + xo + (q / mult) * H * IW;  // q / mult = n*C + m / mult
    __global const float* w = W + m * KH * KW;
    float acc = 0.0f;
    if (iy0 >= 0 && iy0 + (KH - 1) * dh < H && ix0 >= 0 && ix0 + (KW - 1) * dw < IW) {
        for (int ky = 0; ky < KH; ky++)
            for (int kx = 0; kx < KW; kx++)
                acc += x[(iy0 + ky * dh) * IW + ix0 + kx * dw] * w[ky * KW + kx];
    } else {
        for (int ky = 0; ky < KH; ky++) {
            int iy = iy0 + ky * dh;
            bool oky = iy >= 0 && iy < H;
            for (int kx = 0; kx < KW; kx++) {
                int ix = ix0 + kx * dw;
                bool ok = oky && ix >= 0 && ix < IW;
                float v = x[ok ? iy * IW + ix : 0];
                acc += (ok ? v : 0.0f) * w[ky * KW + kx];
            }
        }
    }
    Y[yo + (q * OH + oy) * OW + ox] = unary_op(act, acc + bias[m], act_a, act_b);
}
