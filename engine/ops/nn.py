"""Shape rules of the neural-network ops: convolution, pooling, matmul, normalization, resize."""
import numpy as np

from . import DataDependent, TensorInfo, const_ints, fail, norm_axis, same, schema


def conv_out_dim(size, k, stride, dil, pad_begin, pad_end):
    return (size + pad_begin + pad_end - dil * (k - 1) - 1) // stride + 1


def resolve_pads(node, spatial, kernel, strides, dilations, ceil=False):
    """Explicit begin/end pads from `pads` or `auto_pad` (SAME_UPPER/SAME_LOWER/VALID)."""
    nd = len(spatial)
    auto = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            out = -(-spatial[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - spatial[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto == "SAME_UPPER" else (big, small)
        return pads
    if auto == "VALID":
        return [0] * (2 * nd)
    return list(node.attrs.get("pads", [0] * (2 * nd)))


def conv_geometry(node, x_shape, kernel):
    nd = len(x_shape) - 2
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    pads = resolve_pads(node, x_shape[2:], kernel, strides, dil)
    return strides, dil, pads


@schema("Conv")
def _conv(node, ins):
    x, w = ins[0], ins[1]
    if len(x.shape) < 3 or len(w.shape) != len(x.shape):
        fail(node, ins, "Conv needs input and weight of the same rank >= 3")
    group = node.attrs.get("group", 1)
    if x.shape[1] != w.shape[1] * group:
        fail(node, ins, f"input has {x.shape[1]} channels, weight expects {w.shape[1]} x group {group}")
    kernel = w.shape[2:]
    strides, dil, pads = conv_geometry(node, x.shape, kernel)
    nd = len(kernel)
    spatial = [conv_out_dim(x.shape[2 + i], kernel[i], strides[i], dil[i], pads[i], pads[i + nd])
               for i in range(nd)]
    if min(spatial) <= 0:
        fail(node, ins, f"kernel {tuple(kernel)} does not fit the padded input")
    return [TensorInfo((x.shape[0], w.shape[0], *spatial), x.dtype)]


@schema("ConvTranspose")
def _conv_transpose(node, ins):
    x, w = ins[0], ins[1]
    nd = len(x.shape) - 2
    group = node.attrs.get("group", 1)
    kernel = w.shape[2:]
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    outpad = list(node.attrs.get("output_padding", [0] * nd))
    if "output_shape" in node.attrs:
        spatial = list(node.attrs["output_shape"])[-nd:]
    else:
        pads = list(node.attrs.get("pads", [0] * (2 * nd)))
        auto = node.attrs.get("auto_pad", "NOTSET")
        spatial = []
        for i in range(nd):
            full = strides[i] * (x.shape[2 + i] - 1) + outpad[i] + (kernel[i] - 1) * dil[i] + 1
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                spatial.append(x.shape[2 + i] * strides[i])
            else:
                spatial.append(full - pads[i] - pads[i + nd])
    return [TensorInfo((x.shape[0], w.shape[1] * group, *spatial), x.dtype)]


def pool_out(node, ins, x_shape, kernel):
    nd = len(kernel)
    strides = list(node.attrs.get("strides", [1] * nd))
    dil = list(node.attrs.get("dilations", [1] * nd))
    pads = resolve_pads(node, x_shape[2:], kernel, strides, dil)
    ceil = node.attrs.get("ceil_mode", 0)
    out = []
    for i in range(nd):
        span = x_shape[2 + i] + pads[i] + pads[i + nd] - dil[i] * (kernel[i] - 1) - 1
        o = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
        if ceil and (o - 1) * strides[i] >= x_shape[2 + i] + pads[i]:
            o -= 1  # the last window must start inside the input or left pad
        out.append(o)
    if min(out) <= 0:
        fail(node, ins, f"pool kernel {tuple(kernel)} does not fit the padded input")
    return out


@schema("MaxPool", "AveragePool", "LpPool")
def _pool(node, ins):
    x = ins[0]
    kernel = list(node.attrs["kernel_shape"])
    out = TensorInfo((x.shape[0], x.shape[1], *pool_out(node, ins, x.shape, kernel)), x.dtype)
    if node.op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1]:
        return [out, TensorInfo(out.shape, np.dtype(np.int64))]
    return [out]


@schema("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(node, ins):
    x = ins[0]
    return [same(x, shape=(x.shape[0], x.shape[1]) + (1,) * (len(x.shape) - 2))]


@schema("MatMul")
def _matmul(node, ins):
    a, b = ins[0].shape, ins[1].shape
    if len(a) == 0 or len(b) == 0:
        fail(node, ins, "MatMul inputs must have rank >= 1")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        fail(node, ins, f"inner dims differ: {a2[-1]} vs {b2[-2]}")
    try:
        batch = tuple(int(d) for d in np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        fail(node, ins, "batch dims cannot be broadcast")
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return [TensorInfo(out, ins[0].dtype)]


@schema("Gemm")
def _gemm(node, ins):
    a, b = ins[0].shape, ins[1].shape
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    ka = a[0] if node.attrs.get("transA", 0) else a[1]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    kb = b[1] if node.attrs.get("transB", 0) else b[0]
    if ka != kb:
        fail(node, ins, f"inner dims differ: {ka} vs {kb}")
    return [TensorInfo((m, n), ins[0].dtype)]


@schema("BatchNormalization", "InstanceNormalization", "LRN", "LayerNormalization_unused")
def _same_shape(node, ins):
    return [same(ins[0])] + [same(ins[1]) for _ in node.outputs[1:] if _]


@schema("LayerNormalization")
def _layer_norm(node, ins):
    x = ins[0]
    axis = norm_axis(node, ins, node.attrs.get("axis", -1), len(x.shape))
    stat = x.shape[:axis] + (1,) * (len(x.shape) - axis)
    outs = [same(x)]
    for o in node.outputs[1:]:
        outs.append(TensorInfo(stat, np.dtype(np.float32)))
    return outs


@schema("Resize", "Upsample")
def _resize(node, ins):
    x = ins[0]
    rank = len(x.shape)
    sizes = const_ints(node, ins, 3, "sizes") if len(ins) > 3 else None
    axes = node.attrs.get("axes")
    if sizes:
        out = list(x.shape)
        axes_list = list(axes if axes else range(rank))
        policy = node.attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy in ("not_larger", "not_smaller"):
            ratios = [np.float32(sizes[k]) / np.float32(x.shape[ax]) for k, ax in enumerate(axes_list)]
            r = min(ratios) if policy == "not_larger" else max(ratios)
            for ax in axes_list:
                out[ax] = int(np.floor(r * np.float32(x.shape[ax]) + np.float32(0.5)))
        else:
            for k, ax in enumerate(axes_list):
                out[ax] = sizes[k]
        return [same(x, shape=out)]
    idx = 2 if node.op == "Resize" else 1
    if len(ins) <= idx or ins[idx] is None or ins[idx].value is None:
        raise DataDependent(f"node '{node.name}' (Resize): scales/sizes are computed from data")
    scales = [float(s) for s in np.asarray(ins[idx].value).reshape(-1)]
    out = list(x.shape)
    for k, ax in enumerate(axes if axes else range(rank)):
        # float32 product, truncated: what onnxruntime and the CPU kernel compute
        out[ax] = int(np.float32(scales[k]) * np.float32(x.shape[ax]))
    return [same(x, shape=out)]
