"""Compiled nearest upsampling by whole factors (imported only when backends.cpu.jit.available()).

numpy repeats pixels with fw strided copies, each touching every output row, then fh - 1 row
copies: fw + fh - 1 passes over the output. Here each output row is written once: the first of
a pixel row's fh copies by spreading the input row (both phases of a x2 in one loop, which LLVM
vectorizes with shuffles), the others copied from it while it is in L1.
"""
from .jit import compile


@compile()
def repeat(x, y, fh, fw):
    """y (R, fh, W*fw) = each row of x (R, W) with every pixel repeated fw times, fh times."""
    rows, w = x.shape
    for r in range(rows):
        src = x[r]
        first = y[r, 0]
        if fw == 2:
            for j in range(w):
                v = src[j]
                first[2 * j] = v
                first[2 * j + 1] = v
        else:
            for j in range(w):
                v = src[j]
                for b in range(fw):
                    first[j * fw + b] = v
        for i in range(1, fh):
            dst = y[r, i]
            for k in range(first.shape[0]):
                dst[k] = first[k]
