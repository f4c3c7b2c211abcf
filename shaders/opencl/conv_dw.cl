// Depthwise convolution (groups == input channels C, `mult` output channels per input
// channel), NCHW. The program is built per kernel size (-D KH=.. -D KW=..) so the tap loops
// unroll. A work-item computes OX adjacent outputs of one row: the inner loop over them is
// what the compiler vectorizes (contiguous loads when sw == 1), 2-4x faster on PoCL than one
// output per work-item. Work-item (ox / OX, oy, plane) with plane = n*C*mult + m;
// W (C*mult, 1, KH, KW) as in the model, bias [C*mult].
#define OX 8

__kernel void conv_dw(__global const float* X, int xo, __global const float* W,
                      __global const float* bias, __global float* Y, int yo,
                      int C, int mult, int H, int IW, int OH, int OW,
                      int sh, int sw, int ph, int pw, int dh, int dw,
                      int act, float act_a, float act_b) {
    int ox0 = get_global_id(0) * OX, oy = get_global_id(1), q = get_global_id(2);
    if (ox0 >= OW || oy >= OH) return;
    int m = q % (C * mult);
    int iy0 = oy * sh - ph, ix0 = ox0 * sw - pw;
    __global const float* x = X + xo + (q / mult) * H * IW;  // q / mult = n*C + m / mult
    __global const float* w = W + m * KH * KW;
    float acc[OX];
    for (int j = 0; j < OX; j++) acc[j] = 0.0f;
    bool inside = ix0 >= 0 && ix0 + (OX - 1) * sw + (KW - 1) * dw < IW;  // every column of the block
    for (int ky = 0; ky < KH; ky++) {
        int iy = iy0 + ky * dh;
        if (iy < 0 || iy >= H) continue;
        __global const float* xr = x + iy * IW;
        for (int kx = 0; kx < KW; kx++) {
            float wv = w[ky * KW + kx];
            if (inside) {
                for (int j = 0; j < OX; j++) acc[j] += xr[ix0 + j * sw + kx * dw] * wv;
            } else {
                for (int j = 0; j < OX; j++) {
                    int ix = ix0 + j * sw + kx * dw;
                    acc[j] += (ix >= 0 && ix < IW ? xr[ix] : 0.0f) * wv;
                }
            }
        }
    }
    __global float* y = Y + yo + (q * OH + oy) * OW;
    for (int j = 0; j < OX && ox0 + j < OW; j++)
        y[ox0 + j] = unary_op(act, acc[j] + bias[m], act_a, act_b);
}
