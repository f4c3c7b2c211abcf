// Convolutions, NCHW. A work-item computes TM output channels of one output pixel: adjacent
// work-items take adjacent pixels (coalesced input reads on GPUs, vectorized across work-items
// by PoCL) and share the weights. Weights are packed at load time as [G*MB][KH][KW][C][TM]
// (MB blocks of TM output channels per group, zero-padded) so a tap's padding test sits
// outside the channel loop; bias is packed [G*MB*TM].
#define TM 8

// Block blk = (n*G + g)*MB + mb; writes channels g*M + mb*TM + i (i < TM, < M) of image n.
void store_block(__global float* Y, int yo, float* acc, __global const float* bias, int blk,
                 int M, int MB, int G, int OHW, int p, int act, float act_a, float act_b) {
    int gmb = blk % (G * MB), ng = blk / MB, m0 = (blk % MB) * TM;
    __global float* y = Y + yo + (ng * M + m0) * OHW + p;
    for (int i = 0; i < TM && m0 + i < M; i++)
        y[i * OHW] = unary_op(act, acc[i] + bias[gmb * TM + i], act_a, act_b);
}

// C: input channels per group, M: output channels per group, NB = N*G*MB blocks.
__kernel void conv2d(__global const float* X, int xo, __global const float* W,
                     __global const float* bias, __global float* Y, int yo,
                     int C, int H, int IW, int M, int MB, int G, int NB, int OH, int OW,
                     int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw,
                     int act, float act_a, float act_b) {
    int p = get_global_id(0), blk = get_global_id(1);
    if (p >= OH * OW || blk >= NB) return;
    int gmb = blk % (G * MB), HW = H * IW;
    int oy = p / OW, ox = p - oy * OW;
    int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    __global const float* xg = X + xo + (blk / MB) * C * HW;  // blk / MB = n*G + g
    float acc[TM];
    for (int i = 0; i < TM; i++) acc[i] = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        int iy = iy0 + ky * dh;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < KW; kx++) {
            int ix = ix0 + kx * dw;
            if (ix < 0 || ix >= IW) continue;
            __global const float* x = xg + iy * IW + ix;
            __global const float* w = W + ((gmb * KH + ky) * KW + kx) * C * TM;
            for (int c = 0; c < C; c++) {
                float v = x[c * HW];
                for (int i = 0; i < TM; i++) acc[i] += w[c * TM + i] * v;
            }
        }
    }
    store_block(Y, yo, acc, bias, blk, M, MB, G, OH * OW, p, act, act_a, act_b);
}

// Transposed convolution as a gather: output (oy, ox) takes input (iy, ix) through tap (ky, kx)
// when oy + ph = iy*sh + ky*dh (ph, pw: the crop at the start of the full output). Weights are
// packed like conv2d's from the (C, M/G, KH, KW) ONNX layout.
__kernel void deconv2d(__global const float* X, int xo, __global const float* W,
                       __global const float* bias, __global float* Y, int yo,
                       int C, int H, int IW, int M, int MB, int G, int NB, int OH, int OW,
                       int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw,
                       int act, float act_a, float act_b) {
    int p = get_global_id(0), blk = get_global_id(1);
    if (p >= OH * OW || blk >= NB) return;
    int gmb = blk % (G * MB), HW = H * IW;
    int oy = p / OW, ox = p - oy * OW;
    __global const float* xg = X + xo + (blk / MB) * C * HW;
    float acc[TM];
    for (int i = 0; i < TM; i++) acc[i] = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        int ty = oy + ph - ky * dh;
        if (ty < 0 || ty % sh != 0 || ty / sh >= H) continue;
        for (int kx = 0; kx < KW; kx++) {
            int tx = ox + pw - kx * dw;
            if (tx < 0 || tx % sw != 0 || tx / sw >= IW) continue;
            __global const float* x = xg + (ty / sh) * IW + tx / sw;
            __global const float* w = W + ((gmb * KH + ky) * KW + kx) * C * TM;
            for (int c = 0; c < C; c++) {
                float v = x[c * HW];
                for (int i = 0; i < TM; i++) acc[i] += w[c * TM + i] * v;
            }
        }
    }
    store_block(Y, yo, acc, bias, blk, M, MB, G, OH * OW, p, act, act_a, act_b);
}

// Depthwise: groups == input channels C, `mult` output channels per input channel. Work-item
// (p, plane = n*C*mult + m); W (C*mult, 1, KH, KW) as in the model, bias [C*mult].
__kernel void conv_dw(__global const float* X, int xo, __global const float* W,
                      __global const float* bias, __global float* Y, int yo,
                      int C, int mult, int H, int IW, int planes, int OH, int OW,
                      int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw,
                      int act, float act_a, float act_b) {
    int p = get_global_id(0), q = get_global_id(1);
    if (p >= OH * OW || q >= planes) return;
    int m = q % (C * mult);
    int oy = p / OW, ox = p - oy * OW;
    int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    __global const float* x = X + xo + (q / mult) * H * IW;  // q / mult = n*C + m / mult
    __global const float* w = W + m * KH * KW;
    float acc = 0.0f;
    for (int ky = 0; ky < KH; ky++) {
        int iy = iy0 + ky * dh;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < KW; kx++) {
            int ix = ix0 + kx * dw;
            if (ix >= 0 && ix < IW) acc += x[iy * IW + ix] * w[ky * KW + kx];
        }
    }
    Y[yo + q * OH * OW + p] = unary_op(act, acc + bias[m], act_a, act_b);
}
