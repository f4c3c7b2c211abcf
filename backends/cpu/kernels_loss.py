"""Loss ops that inference graphs still carry (exported with the model's head):
NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss. Accumulated in float64."""
import numpy as np

from engine.errors import UnsupportedOpError

from .kernels import kernel
from .kernels_common import attr_str, fail


def _nll(node, logp, target, weight):
    """Per-element losses and weights: logp (N, C, d...), target (N, d...)."""
    if logp.ndim < 2 or target.shape != (logp.shape[0],) + logp.shape[2:]:
        raise fail(node, f"input {logp.shape} and target {target.shape} do not fit (N, C, d...) / (N, d...)")
    ignore = node.attrs.get("ignore_index")
    t = target.astype(np.int64)
    skip = t == ignore if ignore is not None else np.zeros(t.shape, bool)
    safe = np.where(skip, 0, t)
    c = logp.shape[1]
    if np.any((safe < 0) | (safe >= c)):
        raise fail(node, f"target values must lie in [0, {c}) (or be ignore_index {ignore})")
    picked = np.take_along_axis(logp.astype(np.float64), safe[:, None], axis=1)[:, 0]
    w = np.ones(c) if weight is None else weight.astype(np.float64)
    wt = np.where(skip, 0.0, w[safe])
    return -picked * wt, wt


def _reduce(node, loss, wt, dtype):
    how = attr_str(node, "reduction", "mean")
    if how == "none":
        return loss.astype(dtype)
    if how == "sum":
        return np.array(loss.sum(), dtype)
    if how == "mean":
        total = wt.sum()
        return np.array(loss.sum() / total if total else 0.0, dtype)
    raise UnsupportedOpError(f"node '{node.name}' ({node.op}): reduction '{how}' is not known")


@kernel("NegativeLogLikelihoodLoss")
def nll_loss(node, x, target, weight=None):
    loss, wt = _nll(node, x, target, weight)
    return _reduce(node, loss, wt, x.dtype)


@kernel("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy(node, scores, labels, weights=None):
    if scores.ndim < 2:
        raise fail(node, f"scores of shape {scores.shape} need a class axis (N, C, d...)")
    s = scores.astype(np.float64)
    top = s.max(axis=1, keepdims=True)
    logp = s - top - np.log(np.exp(s - top).sum(axis=1, keepdims=True))
    loss, wt = _nll(node, logp, labels, weights)
    return _reduce(node, loss, wt, scores.dtype), logp.astype(scores.dtype)
