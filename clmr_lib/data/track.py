"""The unit every dataset lists: one audio file, its label and its identity."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Track:
    """One audio file of a dataset.

    Args:
        path: Absolute path of the audio file.
        track_id: Stable identifier (relative path or the dataset's own id); predictions and
            reports are keyed by it.
        label: ``None`` for unlabelled audio, a class index (``int``) for single-label tasks, or a
            multi-hot ``float32`` vector for multi-label tasks.
        group: Optional grouping key (piece, song, album) that splits must never cut through.
    """

    path: str
    track_id: str
    label: Optional[object] = None
    group: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def label_array(self, num_classes: int) -> np.ndarray:
        """Return the label as a float32 vector: one-hot for a class index, as is for multi-hot."""
        if self.label is None or num_classes == 0:
            return np.zeros(num_classes, dtype=np.float32)
        if isinstance(self.label, (int, np.integer)):
            out = np.zeros(num_classes, dtype=np.float32)
            out[int(self.label)] = 1.0
            return out
        return np.asarray(self.label, dtype=np.float32)
