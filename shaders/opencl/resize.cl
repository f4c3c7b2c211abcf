// Resize of the two innermost axes through per-axis tables computed on the host (every
// coordinate transformation and nearest mode is one table): output row oy reads input rows
// I[oy] and I[OH + oy] with weights F[oy] and F[OH + oy]; output column ox reads columns
// I[2*OH + ox] and I[2*OH + OW + ox] with weights F[2*OH + ox], F[2*OH + OW + ox].
// Nearest neighbour is weight 1 on the first tap and 0 on the second.
__kernel void resize2d(__global const float* X, int xo, __global float* Y, int yo,
                       __global const int* I, __global const float* F,
                       int H, int IW, int OH, int OW, int planes) {
    int p = get_global_id(0), q = get_global_id(1);
    if (p >= OH * OW || q >= planes) return;
    int oy = p / OW, ox = p - oy * OW;
    __global const float* x = X + xo + q * H * IW;
    int y0 = I[oy] * IW, y1 = I[OH + oy] * IW, x0 = I[2 * OH + ox], x1 = I[2 * OH + OW + ox];
    float wy0 = F[oy], wy1 = F[OH + oy], wx0 = F[2 * OH + ox], wx1 = F[2 * OH + OW + ox];
    float top = wx0 * x[y0 + x0] + wx1 * x[y0 + x1];
    float bottom = wx0 * x[y1 + x0] + wx1 * x[y1 + x1];
    Y[yo + q * OH * OW + p] = wy0 * top + wy1 * bottom;
}
