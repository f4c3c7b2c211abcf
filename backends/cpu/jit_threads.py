"""Native parts of the CPU backend's thread pool (imported only when backends.cpu.jit.available()).

A helper thread spends its idle time in `spin`, a compiled loop without the GIL that watches
its control block: a small int64 array shared with the threads that hand it work. A job is
either native -- a C function pointer and three arguments, called right there, which is how
OpenBLAS's GEMM jobs run (`blas_callback`) -- or a Python job, for which `spin` returns and the
helper runs it under the GIL. Hand-offs are atomic loads, stores and compare-and-swaps on the
block (LLVM atomics through numba intrinsics), so a job reaches a spinning helper in well under
a microsecond instead of the ~30-60 us of waking a sleeping thread (docs/cpu.md).

Block layout (int64 slots; one block per helper, BLOCK slots = 128 bytes apart so that two
helpers never share a cache line):
  STATE   IDLE, CLAIMED (a caller owns the helper and is filling in the job), NATIVE / PYTHON
          (a job is posted), RUNNING / TAKEN (the helper has taken it: until then a caller
          whose parts are all done may take the job back, `revoke`), SLEEP (the helper waits
          on a futex on this word; `wake` moves it back to IDLE)
  ACTIVE  non-zero while a session runs: the helper then spins and never sleeps
  FN, A, B, C   the native job: FN(int A, void *B, int C), OpenBLAS's dojob signature
  DONE    native jobs this helper has run (written by the helper only; tests read it)
  ALIVE   1 while the helper runs its loop, 0 from when it goes to sleep until it runs again
          (written by the helper only)
  MISSES  (helper 0's block) jobs posted to a helper that was alive but never took them while
          the caller spent MISS_CYCLES or more on its own share: the helper's CPU is busy with
          another thread (parallel.Pool.contended)
"""
import platform

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import cfunc, types
from numba.extending import intrinsic

from .jit import compile

BLOCK = 16
STATE, ACTIVE, FN, A, B, C, DONE, ALIVE, MISSES = 0, 1, 3, 4, 5, 6, 7, 8, 9
IDLE, CLAIMED, NATIVE, PYTHON, SLEEP, RUNNING, TAKEN = 0, 1, 2, 3, 4, 5, 6
# Cycles (the CPU's time-stamp counter) an idle, inactive helper spins before it sleeps.
SPIN_CYCLES = 1 << 24
SPINS_BEFORE_YIELD = 256
# A spinning helper takes a posted job within ~1 us; one that has not after the caller spent
# this many cycles (~10 us) on its own share is not running (module docstring: MISSES).
MISS_CYCLES = 1 << 15

_I64 = ir.IntType(64)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
# Linux's futex syscall number (the pool sleeps on a futex: parallel.pool_available()).
SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
FUTEX_WAIT, FUTEX_WAKE = 128, 129  # the _PRIVATE forms: one process


def _slot(builder, addr):
    return builder.inttoptr(addr, _I64.as_pointer())


@intrinsic
def load(typingctx, addr):
    """*addr with acquire ordering."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(builder, args[0]), "acquire", 8)
    return types.int64(types.int64), codegen


@intrinsic
def store(typingctx, addr, value):
    """*addr = value with release ordering."""
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[1], _slot(builder, args[0]), "release", 8)
        return context.get_dummy_value()
    return types.void(types.int64, types.int64), codegen


@intrinsic
def cas(typingctx, addr, old, new):
    """Atomically: if *addr == old, *addr = new and 1; else 0."""
    def codegen(context, builder, sig, args):
        pair = builder.cmpxchg(_slot(builder, args[0]), args[1], args[2], "acq_rel", "acquire")
        return builder.zext(builder.extract_value(pair, 1), _I64)
    return types.int64(types.int64, types.int64, types.int64), codegen


def _intrinsic_fn(builder, name, ret, params):
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(ret, params, var_arg=name == "syscall"), name)
    return fn


@intrinsic
def pause(typingctx):
    """The spin-wait hint (x86 PAUSE): frees the core's shared resources while waiting."""
    def codegen(context, builder, sig, args):
        if _X86:
            builder.call(_intrinsic_fn(builder, "llvm.x86.sse2.pause", ir.VoidType(), []), [])
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def yield_cpu(typingctx):
    """sched_yield(): another runnable thread gets this core (0.5 us when there is none)."""
    def codegen(context, builder, sig, args):
        builder.call(_intrinsic_fn(builder, "sched_yield", ir.IntType(32), []), [])
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _sched_getcpu(typingctx):
    def codegen(context, builder, sig, args):
        return builder.sext(builder.call(_intrinsic_fn(builder, "sched_getcpu", ir.IntType(32), []), []), _I64)
    return types.int64(), codegen


@compile()
def current_cpu():
    """The CPU the calling thread runs on (sched_getcpu)."""
    return _sched_getcpu()


@compile(inline=True)
def relax(spins):
    """One step of a wait: PAUSE for the first SPINS_BEFORE_YIELD steps, then sched_yield, so
    that a waiting thread hands its core to runnable ones (another runtime's pool in the same
    process, the thread being waited for): spinning on PAUSE alone made every mixnn model
    2-16x slower in `mixnn bench`, next to onnxruntime's and MNN's threads."""
    if spins < SPINS_BEFORE_YIELD:
        pause()
    else:
        yield_cpu()
    return spins + 1


@intrinsic
def futex(typingctx, addr, op, value):
    """syscall(SYS_futex, addr, op, value, NULL): sleep while the 32-bit word at addr equals
    value (FUTEX_WAIT_PRIVATE), or wake that many sleepers (FUTEX_WAKE_PRIVATE). The word is
    the low half of a STATE slot (little-endian)."""
    def codegen(context, builder, sig, args):
        fn = _intrinsic_fn(builder, "syscall", _I64, [_I64])
        if not fn.function_type.var_arg:  # pragma: no cover - declared once per module below
            raise AssertionError("syscall must be variadic")
        zero = ir.Constant(_I64, 0)
        return builder.call(fn, [ir.Constant(_I64, SYS_FUTEX), args[0], args[1], args[2], zero, zero, zero])
    return types.int64(types.int64, types.int64, types.int64), codegen


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (RDTSC on x86)."""
    def codegen(context, builder, sig, args):
        return builder.call(_intrinsic_fn(builder, "llvm.readcyclecounter", _I64, []), [])
    return types.int64(), codegen


@intrinsic
def address(typingctx, ptr):
    def codegen(context, builder, sig, args):
        return builder.ptrtoint(args[0], _I64)
    return types.int64(types.voidptr), codegen


@intrinsic
def call_job(typingctx, fn, a, b, c):
    """fn(int a, void *b, int c) through a function pointer held as an integer."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i32, ir.IntType(8).as_pointer(), i32])
        target = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(target, [builder.trunc(args[1], i32), builder.inttoptr(args[2], ir.IntType(8).as_pointer()),
                              builder.trunc(args[3], i32)])
        return context.get_dummy_value()
    return types.void(types.int64, types.int64, types.int64, types.int64), codegen


@compile()
def spin(block):
    """A helper's idle loop: runs native jobs as they come and returns PYTHON when a Python
    job is posted. Idle for SPIN_CYCLES while its session is inactive, it sleeps on a futex
    (state SLEEP) until `wake` -- in native code, so that waking it does not wait for the GIL
    (a helper asleep in Python took 6-20 ms to wake while the caller ran Python code)."""
    since, spins = cycles(), 0
    store(block + 8 * ALIVE, 1)
    while True:
        state = load(block)
        if state == NATIVE:
            if cas(block, NATIVE, RUNNING):
                call_job(load(block + 8 * FN), load(block + 8 * A), load(block + 8 * B), load(block + 8 * C))
                store(block + 8 * DONE, load(block + 8 * DONE) + 1)
                store(block, IDLE)
            since, spins = cycles(), 0
        elif state == PYTHON:
            if cas(block, PYTHON, TAKEN):
                return PYTHON
        else:
            spins = relax(spins)
            if state == IDLE and load(block + 8 * ACTIVE) == 0 and cycles() - since > SPIN_CYCLES:
                if cas(block, IDLE, SLEEP):
                    store(block + 8 * ALIVE, 0)
                    while load(block) == SLEEP:
                        futex(block, FUTEX_WAIT, SLEEP)
                    store(block + 8 * ALIVE, 1)
                    since, spins = cycles(), 0


@compile()
def wake(block):
    """Wake a sleeping helper (a no-op for one that is awake)."""
    if cas(block, SLEEP, IDLE):
        futex(block, FUTEX_WAKE, 1)


def _pointer_from_address(dtype):
    """An intrinsic: a typed pointer (for numba.carray) from an address held as an integer."""
    @intrinsic
    def at(typingctx, addr):
        sig = types.CPointer(dtype)(types.int64)

        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
        return sig, codegen
    return at


f32_at = _pointer_from_address(types.float32)
f64_at = _pointer_from_address(types.float64)
i64_at = _pointer_from_address(types.int64)
u64_at = _pointer_from_address(types.uint64)


@intrinsic
def fetch_add(typingctx, addr, value):
    """Atomically: *addr += value; the value before."""
    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _slot(builder, args[0]), args[1], "acq_rel")
    return types.int64(types.int64, types.int64), codegen


@intrinsic
def sgemm(typingctx, fn, m, n, k, a, lda, b, ldb, c, ldc):
    """C (m x n) = A (m x k) @ B (k x n), row-major float32, through an ILP64 cblas_sgemm
    (64-bit integers: numpy's scipy-openblas64) at address fn; matrices by address."""
    def codegen(context, builder, sig, args):
        i32, f32, fp = ir.IntType(32), ir.FloatType(), ir.FloatType().as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, _I64, _I64, _I64, f32, fp, _I64, fp, _I64, f32, fp, _I64])
        target = builder.inttoptr(args[0], fnty.as_pointer())
        row_major, no_trans = ir.Constant(i32, 101), ir.Constant(i32, 111)
        builder.call(target, [row_major, no_trans, no_trans, args[1], args[2], args[3], ir.Constant(f32, 1.0),
                              builder.inttoptr(args[4], fp), args[5], builder.inttoptr(args[6], fp), args[7],
                              ir.Constant(f32, 0.0), builder.inttoptr(args[8], fp), args[9]])
        return context.get_dummy_value()
    return types.void(*([types.int64] * 10)), codegen


@compile()
def run_pair(block, fn, args0, args1):
    """A native job in two parts at once: fn(0, args0) here, fn(1, args1) on the helper at
    `block` (0: none). Both here, one after the other, when that helper is not idle. fn is a
    cfunc address, void fn(int part, void *args, int); no GIL is taken on either side."""
    if block != 0 and cas(block, IDLE, CLAIMED):
        store(block + 8 * FN, fn)
        store(block + 8 * A, 1)
        store(block + 8 * B, args1)
        store(block + 8 * C, 0)
        store(block, NATIVE)
        start = cycles()
        call_job(fn, 0, args0, 0)
        late = cycles() - start >= MISS_CYCLES
        if revoke(block, NATIVE, RUNNING) and late and load(block + 8 * ALIVE) != 0:
            fetch_add(block + 8 * MISSES, 1)
    else:
        call_job(fn, 0, args0, 0)
        call_job(fn, 1, args1, 0)


@compile()
def revoke(block, posted, taken):
    """After the caller's own parts: take back a job the helper has not taken yet (a job whose
    parts come from a counter has none left for it, and a helper still waking or held back
    by the OS would keep the caller waiting for nothing), else wait for it to finish. 1 when
    the job was taken back."""
    if cas(block, posted, IDLE):
        return 1
    spins = 0
    while load(block) == taken:
        spins = relax(spins)
    return 0


@compile()
def try_claim(block):
    """1 if the helper was idle and is now the caller's (CLAIMED), else 0."""
    return cas(block, IDLE, CLAIMED)


@compile()
def put(block, slot, value):
    store(block + 8 * slot, value)


# The pool's control blocks, for blas_callback: OpenBLAS calls it with no argument of ours,
# so it reads their address from this cell, an external symbol of its machine code
# (llvmlite.binding.add_symbol). Compiled with the address as a constant instead, the callback
# could not be cached and cost ~0.2-0.4 s at every process's first run.
_BLOCKS_CELL = np.zeros(1, np.int64)
_BLOCKS_SYMBOL = "mixnn_cpu_pool_blocks"
llvm.add_symbol(_BLOCKS_SYMBOL, _BLOCKS_CELL.ctypes.data)  # before blas_callback is compiled or loaded


def set_blas_blocks(address_):
    """Where blas_callback finds the helpers' control blocks (the process's pool)."""
    _BLOCKS_CELL[0] = address_


@intrinsic
def _blas_blocks(typingctx):
    def codegen(context, builder, sig, args):
        cell = builder.module.globals.get(_BLOCKS_SYMBOL)
        if cell is None:
            cell = ir.GlobalVariable(builder.module, _I64, _BLOCKS_SYMBOL)
            cell.linkage = "external"
        return builder.load_atomic(cell, "acquire", 8)
    return types.int64(), codegen


@cfunc(types.void(types.int32, types.voidptr, types.int32, types.uintp, types.voidptr, types.int32),
       cache=True, nogil=True)
def blas_callback(sync, dojob, numjobs, elsize, jobdata, dojob_data):
    """OpenBLAS's threads callback (openblas_set_threads_callback_function): job 0 on the
    calling thread, job j on helper j-1 (its control block from set_blas_blocks), all at once
    -- a threaded GEMM's jobs wait for each other's packed panels, so they must run
    concurrently; a caller waits for a busy helper and wakes a sleeping one. The pool never
    lets OpenBLAS run more threads than it has helpers + 1 while this is installed."""
    blocks = _blas_blocks()
    stride = 8 * BLOCK
    fn, data = address(dojob), address(jobdata)
    for j in range(1, numjobs):
        block = blocks + stride * (j - 1)
        spins = 0
        while not cas(block, IDLE, CLAIMED):
            if cas(block, SLEEP, IDLE):
                futex(block, FUTEX_WAKE, 1)
            spins = relax(spins)
        store(block + 8 * FN, fn)
        store(block + 8 * A, j)
        store(block + 8 * B, data + j * np.int64(elsize))
        store(block + 8 * C, dojob_data)
        store(block, NATIVE)
    start = cycles()
    call_job(fn, 0, data, dojob_data)
    late = cycles() - start >= MISS_CYCLES
    for j in range(1, numjobs):
        block = blocks + stride * (j - 1)
        if late and load(block) == NATIVE and load(block + 8 * ALIVE) != 0:
            fetch_add(blocks + 8 * MISSES, 1)
        spins = 0
        while load(block) == NATIVE or load(block) == RUNNING:  # GEMM jobs must all run
            spins = relax(spins)
