"""The CPU kernel registry: one pure numpy function per op.

A kernel is `fn(node, *inputs) -> ndarray | tuple[ndarray, ...]`: inputs are numpy arrays (None
for an omitted optional input), attributes come from `node.attrs` in the newest ONNX form the
frontend normalizes to. Kernels never write into their inputs. The executors of backends/cpu wrap
them; hot ops also get a specialised executor that writes into the planned arena directly.
"""
KERNELS = {}


def kernel(*names):
    def deco(fn):
        for n in names:
            KERNELS[n] = fn
        return fn
    return deco
