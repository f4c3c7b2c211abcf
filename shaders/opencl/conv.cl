// Convolutions, NCHW. A work-item computes TM output channels of its output pixels: the
// loop over those TM accumulators is what the compiler vectorizes (PoCL: 8-wide), and
// neighbouring work-items take neighbouring pixels (coalesced reads on GPUs) and share the
// weights. Weights are packed at load time as [G*MB][KH][KW][C][TM] (MB blocks of TM output
// channels per group, zero-padded) so a tap's padding test sits outside the channel loop and
// the TM weights of a channel are contiguous; bias is packed [G*MB*TM].
#define TM 8

// Block blk = (n*G + g)*MB + mb; writes channels g*M + mb*TM + i (i < TM, < M) of image n.
void store_block(__global float* Y, int yo, float* acc, __global const float* bias, int blk,
                 int M, int MB, int G, int OHW, int p, int act, float act_a, float act_b) {
    int gmb = blk % (G * MB), ng = blk / MB, m0 = (blk % MB) * TM;
    __global float* y = Y + yo + (ng * M + m0) * OHW + p;
    for (int i = 0; i < TM && m0 + i < M; i++)
        y[i * OHW] = unary_op(act, acc[i] + bias[gmb * TM + i], act_a, act_b);
}

// C: input channels per group, M: output channels per group, NB = N*G*MB blocks. A work-item
// computes the adjacent pixels p, p + 1 (p = 2 * id): a vector of work-items then reads whole
// cache lines, and the weights read once serve 2*TM accumulators. Channels go in chunks of CB
// under the tap loops, so the taps of a chunk hit cache even when the channel stride is a
// power of two (64x64 planes: 4x faster on PoCL).
#define CB 8
__kernel void conv2d(__global const float* X, int xo, __global const float* W,
                     __global const float* bias, __global float* Y, int yo,
                     int C, int H, int IW, int M, int MB, int G, int NB, int OH, int OW,
                     int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw,
                     int act, float act_a, float act_b) {
    int P = OH * OW, p0 = get_global_id(0) * 2, blk = get_global_id(1);
    if (p0 >= P || blk >= NB) return;
    int p1 = min(p0 + 1, P - 1);  // odd P: the last work-item computes its pixel twice
    int gmb = blk % (G * MB), HW = H * IW;
    int iy0 = p0 / OW * sh - ph, ix0 = p0 % OW * sw - pw;
    int iy1 = p1 / OW * sh - ph, ix1 = p1 % OW * sw - pw;
    __global const float* xg = X + xo + (blk / MB) * C * HW;  // blk / MB = n*G + g
    float a0[TM], a1[TM];
    for (int i = 0; i < TM; i++) a0[i] = a1[i] = 0.0f;
    for (int c0 = 0; c0 < C; c0 += CB) {
        int c1 = min(c0 + CB, C);
        for (int ky = 0; ky < KH; ky++) {
            int ya = iy0 + ky * dh, yb = iy1 + ky * dh;
            bool oya = ya >= 0 && ya < H, oyb = yb >= 0 && yb < H;
            for (int kx = 0; kx < KW; kx++) {
                int xa = ix0 + kx * dw, xb = ix1 + kx * dw;
                bool oka = oya && xa >= 0 && xa < IW, okb = oyb && xb >= 0 && xb < IW;
                // a tap in the padding reads a valid address and is masked to 0
                __global const float* x0 = xg + (oka ? ya * IW + xa : 0);
                __global const float* x1 = xg + (okb ? yb * IW + xb : 0);
                float m0 = oka ? 1.0f : 0.0f, m1 = okb ? 1.0f : 0.0f;
                __global const float* w = W + ((gmb * KH + ky) * KW + kx) * C * TM;
                for (int c = c0; c < c1; c++) {
                    float v0 = x0[c * HW] * m0, v1 = x1[c * HW] * m1;
                    for (int i = 0; i < TM; i++) {
                        a0[i] += w[c * TM + i] * v0;
                        a1[i] += w[c * TM + i] * v1;
                    }
                }
            }
        }
    }
    store_block(Y, yo, a0, bias, blk, M, MB, G, P, p0, act, act_a, act_b);
    store_block(Y, yo, a1, bias, blk, M, MB, G, P, p1, act, act_a, act_b);
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
