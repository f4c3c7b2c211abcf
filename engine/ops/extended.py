"""Shape rules of the ops beyond the core set that the CPU backend runs: attention and the other
transformer ops, recurrent layers, spatial sampling, signal processing, losses and BitCast.
With a rule, such a node is planned like any other instead of running eagerly."""
import numpy as np

from ..onnx_types import onnx_dtype
from . import TensorInfo, const_ints, fail, same, schema
from .nn import conv_out_dim


def _info(shape, dtype):
    return TensorInfo(tuple(int(d) for d in shape), np.dtype(dtype))


@schema("Attention")
def _attention(node, ins):
    q, k, v = ins[:3]
    past = ins[4] if len(ins) > 4 and ins[4] is not None else None
    if len(q.shape) == 3:
        hq, hkv = node.attrs.get("q_num_heads", 0), node.attrs.get("kv_num_heads", 0)
        if not hq or not hkv or q.shape[2] % hq or k.shape[2] % hkv or v.shape[2] % hkv:
            fail(node, ins, "3-D Q/K/V need q_num_heads and kv_num_heads dividing their last dims")
        b, sq, skv, d, dv = q.shape[0], q.shape[1], k.shape[1], k.shape[2] // hkv, v.shape[2] // hkv
        y = (b, sq, hq * dv)
    else:
        b, hq, sq, _ = q.shape
        hkv, skv, d, dv = k.shape[1], k.shape[2], k.shape[3], v.shape[3]
        y = (b, hq, sq, dv)
    total = skv + (past.shape[2] if past is not None else 0)
    return [_info(y, q.dtype), _info((b, hkv, total, d), k.dtype), _info((b, hkv, total, dv), v.dtype),
            _info((b, hq, sq, total), q.dtype)]


@schema("RotaryEmbedding", "SwiGLU", "TensorScatter")
def _same_as_first(node, ins):
    return [same(ins[0])]


@schema("CausalConvWithState")
def _causal_conv(node, ins):
    x, w = ins[0], ins[1]
    return [same(x), _info((x.shape[0], x.shape[1], w.shape[2] - 1), x.dtype)]


@schema("LinearAttention")
def _linear_attention(node, ins):
    q, k, v = ins[:3]
    hq, hkv = node.attrs.get("q_num_heads", 0), node.attrs.get("kv_num_heads", 0)
    if not hq or not hkv or k.shape[2] % hkv or v.shape[2] % hkv:
        fail(node, ins, "q_num_heads and kv_num_heads must divide the packed head dims")
    dk, dv = k.shape[2] // hkv, v.shape[2] // hkv
    return [_info((q.shape[0], q.shape[1], hq * dv), q.dtype), _info((q.shape[0], hkv, dk, dv), q.dtype)]


@schema("RNN", "GRU", "LSTM")
def _recurrent(node, ins):
    x, r = ins[0], ins[2]
    layout = node.attrs.get("layout", 0)
    seq, batch = (x.shape[1], x.shape[0]) if layout else (x.shape[0], x.shape[1])
    dirs, hidden = r.shape[0], node.attrs.get("hidden_size") or r.shape[-1]
    y = (batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden)
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    return [_info(y, x.dtype), _info(state, x.dtype), _info(state, x.dtype)][:max(len(node.outputs), 1)]


@schema("GridSample")
def _grid_sample(node, ins):
    x, grid = ins
    return [_info((x.shape[0], x.shape[1]) + tuple(grid.shape[1:-1]), x.dtype)]


@schema("AffineGrid")
def _affine_grid(node, ins):
    size = const_ints(node, ins, 1, "size")
    return [_info((size[0], *size[2:], len(size) - 2), ins[0].dtype)]


@schema("RoiAlign")
def _roi_align(node, ins):
    x, rois = ins[0], ins[1]
    return [_info((rois.shape[0], x.shape[1], node.attrs.get("output_height", 1),
                   node.attrs.get("output_width", 1)), x.dtype)]


@schema("MaxUnpool")
def _max_unpool(node, ins):
    x = ins[0]
    if len(ins) > 2 and ins[2] is not None:
        return [_info(const_ints(node, ins, 2, "output_shape"), x.dtype)]
    nd = len(x.shape) - 2
    k, s = node.attrs.get("kernel_shape", []), node.attrs.get("strides", [1] * nd)
    p = node.attrs.get("pads", [0] * (2 * nd))
    if len(k) != nd:
        fail(node, ins, f"kernel_shape {k} does not fit a {nd}-D input")
    return [_info(x.shape[:2] + tuple((x.shape[2 + i] - 1) * s[i] + k[i] - p[i] - p[i + nd] for i in range(nd)),
                  x.dtype)]


@schema("Col2Im")
def _col2im(node, ins):
    x, img, blk = ins[0], const_ints(node, ins, 1, "image_shape"), const_ints(node, ins, 2, "block_shape")
    k = int(np.prod(blk))
    if not k or x.shape[1] % k:
        fail(node, ins, f"channels {x.shape[1]} are not a multiple of the block size {k}")
    return [_info((x.shape[0], x.shape[1] // k, *img), x.dtype)]


@schema("DeformConv")
def _deform_conv(node, ins):
    x, w = ins[0], ins[1]
    nd = len(x.shape) - 2
    s, d = node.attrs.get("strides", [1] * nd), node.attrs.get("dilations", [1] * nd)
    p = node.attrs.get("pads", [0] * (2 * nd))
    spatial = [conv_out_dim(x.shape[2 + i], w.shape[2 + i], s[i], d[i], p[i], p[i + nd]) for i in range(nd)]
    return [_info((x.shape[0], w.shape[0], *spatial), x.dtype)]


@schema("BitCast")
def _bitcast(node, ins):
    return [same(ins[0], dtype=onnx_dtype(node.attrs["to"]))]


@schema("DFT")
def _dft(node, ins):
    x = ins[0]
    axis = const_ints(node, ins, 2, "axis") if len(ins) > 2 and ins[2] is not None else [-2]
    ax = axis[0] + len(x.shape) if axis[0] < 0 else axis[0]
    if not 0 <= ax <= len(x.shape) - 2:
        fail(node, ins, f"axis {axis[0]} is not a signal axis")
    inverse, onesided = node.attrs.get("inverse", 0), node.attrs.get("onesided", 0)
    default = 2 * (x.shape[ax] - 1) if inverse and onesided else x.shape[ax]
    given = const_ints(node, ins, 1, "dft_length") if len(ins) > 1 and ins[1] is not None else None
    n = given[0] if given else default
    out = list(x.shape)
    out[ax] = n // 2 + 1 if onesided and not inverse else n
    out[-1] = 1 if inverse and onesided else 2
    return [_info(out, x.dtype)]


@schema("STFT")
def _stft(node, ins):
    x = ins[0]
    step = const_ints(node, ins, 1, "frame_step")[0]
    window = ins[2] if len(ins) > 2 else None
    given = const_ints(node, ins, 3, "frame_length") if len(ins) > 3 and ins[3] is not None else None
    length = given[0] if given else window.shape[0] if window is not None else x.shape[1]
    if step < 1 or not 1 <= length <= x.shape[1]:
        fail(node, ins, f"frame_step {step} / frame_length {length} do not fit the signal")
    frames = (x.shape[1] - length) // step + 1
    bins = length // 2 + 1 if node.attrs.get("onesided", 1) and x.shape[-1] == 1 else length
    return [_info((x.shape[0], frames, bins, 2), x.dtype)]


@schema("HannWindow", "HammingWindow", "BlackmanWindow")
def _window(node, ins):
    return [_info(const_ints(node, ins, 0, "size")[:1], onnx_dtype(node.attrs.get("output_datatype", 1)))]


@schema("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def _loss(node, ins):
    x, target = ins[0], ins[1]
    none = node.attrs.get("reduction", "mean") in ("none", b"none")
    outs = [_info(target.shape if none else (), x.dtype)]
    return outs + [same(x)] if node.op == "SoftmaxCrossEntropyLoss" else outs


@schema("TfIdfVectorizer")
def _tfidf(node, ins):
    width = max(node.attrs.get("ngram_indexes", [-1]) or [-1]) + 1
    x = ins[0]
    return [_info((width,) if len(x.shape) == 1 else (x.shape[0], width), np.float32)]
