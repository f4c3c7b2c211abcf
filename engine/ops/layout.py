"""Shape rules of the data-movement ops (the ones geometry lowers to region copies)."""
import numpy as np

from . import TensorInfo, const_ints, fail, norm_axis, same, schema


@schema("Reshape")
def _reshape(node, ins):
    x = ins[0]
    target = const_ints(node, ins, 1, "shape")
    allowzero = node.attrs.get("allowzero", 0)
    out = [x.shape[i] if (d == 0 and not allowzero and i < len(x.shape)) else d
           for i, d in enumerate(target)]
    total = int(np.prod(x.shape))
    if out.count(-1) > 1:
        fail(node, ins, f"shape {target} has more than one -1")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known == 0 or total % known:
            fail(node, ins, f"cannot reshape {total} elements into {target}")
        out[out.index(-1)] = total // known
    if int(np.prod(out)) != total:
        fail(node, ins, f"cannot reshape {total} elements into {out}")
    return [same(x, shape=out)]


@schema("Flatten")
def _flatten(node, ins):
    x = ins[0]
    axis = node.attrs.get("axis", 1)
    axis = norm_axis(node, ins, axis + len(x.shape) if axis < 0 else axis, len(x.shape) + 1)
    return [same(x, shape=(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))))]


@schema("Squeeze")
def _squeeze(node, ins):
    x = ins[0]
    axes = const_ints(node, ins, 1, "axes")
    if axes is None:
        return [same(x, shape=[d for d in x.shape if d != 1])]
    axes = {norm_axis(node, ins, a, len(x.shape)) for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            fail(node, ins, f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [same(x, shape=[d for i, d in enumerate(x.shape) if i not in axes])]


@schema("Unsqueeze")
def _unsqueeze(node, ins):
    x = ins[0]
    axes = const_ints(node, ins, 1, "axes")
    rank = len(x.shape) + len(axes)
    axes = sorted(norm_axis(node, ins, a, rank) for a in axes)
    if len(set(axes)) != len(axes):
        fail(node, ins, f"repeated axes {axes}")
    out, it = [], iter(x.shape)
    for i in range(rank):
        out.append(1 if i in axes else next(it))
    return [same(x, shape=out)]


@schema("Transpose")
def _transpose(node, ins):
    x = ins[0]
    perm = node.attrs.get("perm") or list(range(len(x.shape)))[::-1]
    if sorted(perm) != list(range(len(x.shape))):
        fail(node, ins, f"perm {list(perm)} is not a permutation of rank {len(x.shape)}")
    return [same(x, shape=[x.shape[p] for p in perm])]


def slice_params(node, ins):
    """Normalized (starts, ends, steps) per axis of the input, clamped as numpy slices."""
    x = ins[0]
    starts = const_ints(node, ins, 1, "starts")
    ends = const_ints(node, ins, 2, "ends")
    axes = const_ints(node, ins, 3, "axes") or list(range(len(starts)))
    steps = const_ints(node, ins, 4, "steps") or [1] * len(starts)
    rank = len(x.shape)
    sl = [slice(None)] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            fail(node, ins, "slice step 0")
        a = norm_axis(node, ins, a, rank)
        start, stop, step = slice(s, e, st).indices(x.shape[a])
        sl[a] = slice(start, stop if stop >= 0 else None, step)  # -1 would mean "the last" to numpy
    return sl


@schema("Slice")
def _slice(node, ins):
    x = ins[0]
    sl = slice_params(node, ins)
    return [same(x, shape=[len(range(d)[s]) for s, d in zip(sl, x.shape)])]


@schema("Concat")
def _concat(node, ins):
    present = [i for i in ins if i is not None]
    rank = len(present[0].shape)
    axis = norm_axis(node, ins, node.attrs["axis"], rank)
    for i in present:
        if len(i.shape) != rank or any(a != b for k, (a, b) in enumerate(zip(i.shape, present[0].shape))
                                       if k != axis):
            fail(node, ins, f"inputs differ outside axis {axis}")
    out = list(present[0].shape)
    out[axis] = sum(i.shape[axis] for i in present)
    return [same(present[0], shape=out)]


def split_sizes(node, ins):
    x = ins[0]
    axis = norm_axis(node, ins, node.attrs.get("axis", 0), len(x.shape))
    sizes = const_ints(node, ins, 1, "split") if len(ins) > 1 else None
    n = len(node.outputs)
    if not sizes:
        num = node.attrs.get("num_outputs", n)
        chunk = -(-x.shape[axis] // num)
        sizes = [min(chunk, x.shape[axis] - chunk * k) for k in range(num)]
    if sum(sizes) != x.shape[axis] or len(sizes) != n:
        fail(node, ins, f"split sizes {sizes} do not add up to {x.shape[axis]} over {n} outputs")
    return axis, sizes


@schema("Split")
def _split(node, ins):
    x = ins[0]
    axis, sizes = split_sizes(node, ins)
    return [same(x, shape=x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in sizes]


@schema("Pad")
def _pad(node, ins):
    x = ins[0]
    pads = const_ints(node, ins, 1, "pads")
    rank = len(x.shape)
    axes = const_ints(node, ins, 3, "axes") if len(ins) > 3 else None
    axes = [norm_axis(node, ins, a, rank) for a in (axes or range(rank))]
    out = list(x.shape)
    for k, a in enumerate(axes):
        out[a] += pads[k] + pads[k + len(axes)]
    if min(out, default=1) < 0:
        fail(node, ins, f"pads {pads} remove more than the input has")
    return [same(x, shape=out)]


@schema("Tile")
def _tile(node, ins):
    reps = const_ints(node, ins, 1, "repeats")
    return [same(ins[0], shape=[d * r for d, r in zip(ins[0].shape, reps)])]


@schema("Expand")
def _expand(node, ins):
    shape = const_ints(node, ins, 1, "shape")
    try:
        out = np.broadcast_shapes(ins[0].shape, tuple(shape))
    except ValueError:
        fail(node, ins, f"cannot expand to {shape}")
    return [same(ins[0], shape=out)]


@schema("Gather")
def _gather(node, ins):
    x, idx = ins[0], ins[1]
    axis = norm_axis(node, ins, node.attrs.get("axis", 0), len(x.shape))
    return [same(x, shape=x.shape[:axis] + tuple(idx.shape) + x.shape[axis + 1:])]


@schema("GatherElements")
def _gather_elements(node, ins):
    return [same(ins[0], shape=ins[1].shape)]


@schema("DepthToSpace")
def _d2s(node, ins):
    n, c, h, w = ins[0].shape
    b = node.attrs["blocksize"]
    if c % (b * b):
        fail(node, ins, f"channels {c} not divisible by blocksize^2 {b * b}")
    return [same(ins[0], shape=(n, c // (b * b), h * b, w * b))]


@schema("SpaceToDepth")
def _s2d(node, ins):
    n, c, h, w = ins[0].shape
    b = node.attrs["blocksize"]
    if h % b or w % b:
        fail(node, ins, f"spatial {h}x{w} not divisible by blocksize {b}")
    return [same(ins[0], shape=(n, c * b * b, h // b, w // b))]


@schema("Shape")
def _shape(node, ins):
    shape = list(ins[0].shape)
    start = node.attrs.get("start", 0)
    end = node.attrs.get("end", None)
    vals = np.array(shape[slice(start, end)], dtype=np.int64)
    return [TensorInfo(vals.shape, np.dtype(np.int64), vals)]


@schema("Size")
def _size(node, ins):
    v = np.array(int(np.prod(ins[0].shape)), dtype=np.int64)
    return [TensorInfo((), np.dtype(np.int64), v)]


@schema("ConstantOfShape")
def _const_of_shape(node, ins):
    shape = const_ints(node, ins, 0, "shape")
    value = node.attrs.get("value")
    dtype = np.asarray(value).dtype if value is not None else np.dtype(np.float32)
    return [TensorInfo(tuple(shape), dtype)]


@schema("Range")
def _range(node, ins):
    start, limit, delta = (np.asarray(i.value).item() if i.value is not None else None for i in ins)
    if None in (start, limit, delta):
        return None
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return [TensorInfo((n,), ins[0].dtype)]
