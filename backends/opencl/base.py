"""What every OpenCL executor shares: op codes, kernel fetching, launch geometry, fused activations.

An executor fetches its kernels in __init__ (once per shape), sets their arguments once in
bind() and records `launches` (kernel, global size, local size); run() and the backend's
compiled subgraph only enqueue those. Kernels take the arena buffer plus element offsets.
"""
import numpy as np

from engine.backend import Executor

from .compiler import source

# Op codes shared with shaders/opencl/common.cl (U_*, B_*) and reduce.cl (R_*).
UNARY = {name: k for k, name in enumerate([
    "", "Relu", "Clip", "Sigmoid", "SiLU", "HardSwish", "HardSigmoid", "LeakyRelu", "Tanh",
    "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin",
    "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf",
    "Gelu", "Gelu_tanh", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
    "ThresholdedRelu", "Shrink"])}
BINARY = {name: k for k, name in enumerate(["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Fmod"])}
REDUCE = {name: k for k, name in enumerate([
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"])}


def _defines(prefix, table, strip=""):
    return "\n".join(f"#define {prefix}_{(name.replace(strip, '') or 'NONE').upper()} {k}"
                     for name, k in table.items())


HEADER = "\n".join([_defines("U", UNARY), _defines("B", BINARY), _defines("R", REDUCE, "Reduce")])

i32, f32 = np.int32, np.float32


def program_source(file):
    """A program's full source: generated codes + shared functions + the kernels of `file`."""
    return source("common.cl", file, header=HEADER)


# PoCL JIT-compiles every kernel once per local size (0.2-2.6 s each here), so launches use a
# few fixed work-group shapes instead of one fitted to each tensor; surplus work-items return.
GROUP = 64  # elementwise, raster and reduction kernels (a power of two: tree reductions)
ROWS = 32   # conv and GEMM kernels: pixels / columns per work-group


def box_local(inner, width=GROUP):
    """Work-group of the 3-D (inner, next, rest) grids of raster, binary and depthwise kernels:
    along the inner dim unless it is short."""
    return (width, 1, 1) if inner >= 16 else (4, 16, 1)


def fused_activation(node):
    """(code, a, b) of the activation the optimizer fused into a Conv/MatMul, for unary_op."""
    act = node.attrs.get("activation", "") or ""
    if isinstance(act, bytes):
        act = act.decode()
    if act not in UNARY:
        return None
    a = node.attrs
    params = {"Clip": (a.get("act_min", -np.inf), a.get("act_max", np.inf)),
              "LeakyRelu": (a.get("act_alpha", 0.01), 0.0),
              "HardSigmoid": (a.get("act_alpha", 0.2), a.get("act_beta", 0.5))}
    lo, hi = params.get(act, (0.0, 0.0))
    return i32(UNARY[act]), f32(lo), f32(hi)


def float32_only(ins, outs):
    """None if every present tensor is float32, else the reason to decline."""
    for t in list(ins) + list(outs):
        if t is not None and np.dtype(t.dtype) != np.float32:
            return f"dtype {np.dtype(t.dtype)} (opencl kernels are float32)"
    return None


def fit(gsize, local):
    """(global size rounded up to whole work-groups, local size), as tuples of ints."""
    local = tuple(int(v) for v in local)
    return tuple(int(-(-g // v) * v) for g, v in zip(gsize, local)), local


class CLExecutor(Executor):
    def __init__(self, backend, node, ins, outs):
        super().__init__(backend, node, ins, outs)
        self.launches = []  # (kernel, global size, local size), enqueued as they are
        self.sizes = []     # the work-items each launch needs (before rounding)
        self.programs = set()

    def kernel(self, file, name, options=""):
        prg = self.backend.program(file, options)
        self.programs.add(prg)
        k = self.backend.cl.Kernel(prg, name)
        k.mixnn_key = prg.mixnn_key
        return k

    def launch(self, kernel, gsize, lsize):
        cl = self.backend.cl
        limit = kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, self.backend.dev)
        lsize = list(lsize)
        while lsize[0] > 1 and int(np.prod(lsize)) > limit:  # a register-hungry kernel on a small GPU
            lsize[0] //= 2
        self.sizes.append(tuple(int(g) for g in gsize))
        self.launches.append((kernel, *fit(gsize, lsize)))

    def launch_2d(self, kernel, n, rows, local=GROUP):
        """The common grid: (elements of a row, rows), work-groups along the row."""
        self.launch(kernel, (n, rows), (local, 1))

    def run(self):
        enqueue, q = self.backend.cl.enqueue_nd_range_kernel, self.backend.queue
        for k, g, l in self.launches:
            enqueue(q, k, g, l)
