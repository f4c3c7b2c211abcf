"""Memory planning: tensor lifetimes packed into one arena per backend.

At resize every intermediate tensor of a backend gets an offset in that backend's arena, so
that tensors whose lifetimes overlap never share bytes and the others may. Packing is
greedy-by-size with best fit (largest tensor first, into the smallest gap that holds it among
the tensors already placed whose lifetimes overlap), which lands close to the lower bound: the
largest total of simultaneously live bytes.
"""
from __future__ import annotations

from dataclasses import dataclass


def align_up(n: int, alignment: int) -> int:
    return (int(n) + alignment - 1) // alignment * alignment


@dataclass
class Block:
    key: object
    nbytes: int
    first: int  # step index of the producer
    last: int   # step index of the last reader
    offset: int = -1


def plan_arena(blocks: list[Block], alignment: int) -> int:
    """Assign `offset` to every block; return the arena size in bytes."""
    placed: list[Block] = []
    size = 0
    for b in sorted(blocks, key=lambda b: (-b.nbytes, b.first)):
        need = align_up(max(b.nbytes, 1), alignment)
        live = sorted((p for p in placed if p.first <= b.last and b.first <= p.last),
                      key=lambda p: p.offset)
        best, best_gap, cursor = None, None, 0
        for p in live:
            gap = p.offset - cursor
            if gap >= need and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, align_up(p.offset + p.nbytes, alignment))
        b.offset = best if best is not None else cursor
        placed.append(b)
        size = max(size, b.offset + need)
    return size


def lower_bound(blocks: list[Block], alignment: int) -> int:
    """The largest total of simultaneously live (aligned) bytes."""
    events = []
    for b in blocks:
        events.append((b.first, 1, align_up(max(b.nbytes, 1), alignment)))
        events.append((b.last + 1, 0, -align_up(max(b.nbytes, 1), alignment)))
    live = peak = 0
    for _, _, delta in sorted(events):
        live += delta
        peak = max(peak, live)
    return peak


class ArenaPool:
    """One backend's arena: grown only when a new plan needs more, reused otherwise."""

    def __init__(self, backend):
        self.backend = backend
        self.buffer = None
        self.capacity = 0
        self.static_bytes = 0

    def reserve(self, nbytes: int) -> bool:
        """Make the arena at least nbytes; True if it had to be (re)allocated."""
        if self.buffer is not None and nbytes <= self.capacity:
            return False
        self.release()
        self.capacity = align_up(max(nbytes, 1), self.backend.alignment)
        self.buffer = self.backend.allocate(self.capacity)
        return True

    def release(self):
        if self.buffer is not None:
            self.backend.release(self.buffer, self.capacity)
        self.buffer, self.capacity = None, 0
