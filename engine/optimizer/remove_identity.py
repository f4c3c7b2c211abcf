"""Identity removal: Identity, and Dropout at inference (an identity unless its mask is used),
are bypassed: their consumers read the input directly.

When the output is a graph output, the input's producer takes over its name instead -- if the
input is read by nothing else and is not itself a graph input, constant or output. A Dropout
whose mask output is read stays.
"""
from __future__ import annotations

from .rewrite import Rewrite, count, subgraphs


def remove_identity(graph):
    rw = Rewrite(graph)
    bypassed = 0
    for node in rw.g.nodes:
        if node.op not in ("Identity", "Dropout") or not node.inputs or not node.inputs[0]:
            continue
        out = node.outputs[0]
        mask_used = any(o and rw.consumers(o) or o in rw.graph_outputs for o in node.outputs[1:])
        readers = rw.consumers(out)
        training = node.inputs[2] if len(node.inputs) > 2 else ""
        if training and (rw.const(training) is None or bool(rw.const(training).any())):
            continue  # training mode is refused by the kernel, with its message
        if mask_used or any(subgraphs(r) for r in readers):
            continue
        if out not in rw.graph_outputs:
            for r in readers:
                r.inputs = [node.inputs[0] if i == out else i for i in r.inputs]
                rw.note_reader(node.inputs[0], r)
        elif not _rename_producer(rw, node):
            continue
        rw.remove(node)
        bypassed += 1
    return rw.finish(), count(bypassed, "Identity/Dropout nodes", "bypassed")


def _rename_producer(rw, node):
    src = node.inputs[0]
    producer = rw.producer(src)
    if producer is None or rw.sole_consumer(src) is not node or any(subgraphs(producer)):
        return False
    producer.outputs = [node.outputs[0] if o == src else o for o in producer.outputs]
    return True
