"""Specialised CPU executors: ops that compute straight into the arena or alias it."""
import numpy as np

from engine.backend import Executor

from . import CpuBackend


@CpuBackend.op("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
class ReshapeCPU(Executor):
    """Same bytes, new shape: shares the input's arena block when the planner could merge them."""
    alias = True

    def run(self):
        if not self.aliased:
            np.copyto(self.outputs[0], self.inputs[0].reshape(self.outputs[0].shape))
