"""NonMaxSuppression: greedy per (batch, class), one vectorized IoU row per selected box."""
import numpy as np

from .kernels import kernel
from .kernels_common import scalar


def _corners(boxes, center_point_box):
    """(y1, x1, y2, x2) with y1 <= y2 and x1 <= x2 from either box encoding."""
    if center_point_box:
        xc, yc, w, h = (boxes[..., i] for i in range(4))
        return yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
    a, b, c, d = (boxes[..., i] for i in range(4))
    return np.minimum(a, c), np.minimum(b, d), np.maximum(a, c), np.maximum(b, d)


def _suppressed(i, rest, y1, x1, y2, x2, area, threshold):
    """Which boxes of `rest` overlap box i by an IoU above the threshold."""
    ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
    iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
    inter = np.where((ih > 0) & (iw > 0), ih * iw, 0)
    union = area[i] + area[rest] - inter
    valid = (inter > 0) & (area[i] > 0) & (area[rest] > 0) & (union > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return valid & (inter / union > threshold)


@kernel("NonMaxSuppression")
def non_max_suppression(node, boxes, scores, max_per_class=None, iou_threshold=None,
                        score_threshold=None):
    limit = int(scalar(max_per_class, 0))
    iou = np.float32(scalar(iou_threshold, 0.0))
    min_score = scalar(score_threshold, None)
    picked = []
    if limit > 0:
        for b in range(scores.shape[0]):
            y1, x1, y2, x2 = _corners(boxes[b].astype(np.float32, copy=False),
                                      node.attrs.get("center_point_box", 0))
            area = (y2 - y1) * (x2 - x1)
            for c in range(scores.shape[1]):
                s = scores[b, c]
                cand = np.arange(s.size) if min_score is None else np.nonzero(s > min_score)[0]
                order = cand[np.argsort(-s[cand], kind="stable")]  # best first, ties by index
                kept = 0
                while order.size and kept < limit:
                    i, order = order[0], order[1:]
                    picked.append((b, c, i))
                    kept += 1
                    order = order[~_suppressed(i, order, y1, x1, y2, x2, area, iou)]
    return np.array(picked, dtype=np.int64).reshape(-1, 3)
