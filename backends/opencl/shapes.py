"""Stride arithmetic for kernels that walk strided boxes (broadcast, batched MatMul)."""


def contiguous_strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= int(d)
    return list(reversed(out))


def broadcast_strides(shape, out_shape):
    """Element strides of a contiguous `shape` read as `out_shape` (numpy broadcasting)."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(shape, out_shape, contiguous_strides(shape))]


def merge_dims(sizes, *strides):
    """Drop unit dims and merge neighbours that are contiguous in every stride list:
    (sizes, [strides...]) with at least one dim."""
    dims = [(s, *st) for s, *st in zip(sizes, *strides) if s != 1]
    merged = []
    for d in dims:
        if merged and all(p == q * d[0] for p, q in zip(merged[-1][1:], d[1:])):
            merged[-1] = (merged[-1][0] * d[0], *d[1:])
        else:
            merged.append(d)
    merged = merged or [(1,) + (0,) * len(strides)]
    return [m[0] for m in merged], [[m[k] for m in merged] for k in range(1, len(strides) + 1)]


def pad_left(values, n, fill):
    return [fill] * (n - len(values)) + list(values)
