"""Evaluation splits: a validation split held out of the training split when a dataset has none."""
from __future__ import annotations

import numpy as np

from clmr_lib.data.report import SkipReport


class HeldOutValidation:
    """A dataset whose missing validation split is carved out of its training split.

    Early stopping, the plateau schedule and the classical probes' grid search all need validation
    tracks; without them a probe would train for ``finetuner_max_epochs`` and be chosen blindly.
    ``fraction`` of the labelled training tracks (whole groups — piece, album — when tracks carry
    one, so that no group straddles the two) are moved to validation, drawn with ``seed``.

    Args:
        dataset: The dataset (``tracks(split)``, ``task_type``, ``class_names``, ``skipped``).
        fraction: Share of the training tracks (or groups) held out.
        seed: Seed of the draw.
    """

    def __init__(self, dataset, fraction: float = 0.1, seed: int = 42):
        self.dataset = dataset
        self.task_type, self.class_names = dataset.task_type, dataset.class_names
        self.task, self.skipped = getattr(dataset, "task", ""), getattr(dataset, "skipped", SkipReport())
        self.variant = getattr(dataset, "variant", "")
        train = dataset.tracks("train")
        groups = sorted({t.group or t.path for t in train})
        rng = np.random.default_rng(seed)
        held = set(rng.choice(groups, size=max(1, int(round(fraction * len(groups)))), replace=False).tolist())
        self._splits = {"train": [t for t in train if (t.group or t.path) not in held],
                        "valid": [t for t in train if (t.group or t.path) in held], "test": dataset.tracks("test")}

    def tracks(self, split: str) -> list:
        """Tracks of ``train`` (what is left), ``valid`` (held out) or ``test`` (unchanged)."""
        return list(self._splits[split])


#: Fewest labelled training tracks from which a validation part is held out.
MIN_TRACKS_TO_HOLD_OUT = 10


def _labelled(dataset, split: str) -> int:
    return sum(t.label is not None for t in dataset.tracks(split))


def reports_on_validation(dataset) -> bool:
    """Whether metrics go on the validation split: an unlabelled test split (artist20's course layout)."""
    return not _labelled(dataset, "test") and _labelled(dataset, "valid") > 0


def selects_on_held_out_training(dataset) -> bool:
    """Whether probes are selected on training tracks held out (see :func:`selection_view`)."""
    return reports_on_validation(dataset) and _labelled(dataset, "train") >= MIN_TRACKS_TO_HOLD_OUT


def selection_view(dataset, seed: int, fraction: float = 0.1):
    """The dataset that probes train and are selected on (early stopping, plateau, grid search).

    ``dataset`` itself, except when its validation split is the one metrics are reported on
    (:func:`reports_on_validation`): then choosing epochs and hyperparameters on those same tracks
    would flatter every probe, so selection uses ``fraction`` of the training tracks held out
    instead (a :class:`HeldOutValidation` view; the draw depends only on ``seed`` and the tracks).
    """
    return HeldOutValidation(dataset, fraction, seed) if selects_on_held_out_training(dataset) else dataset


def with_validation(dataset, seed: int, fraction: float = 0.1):
    """``dataset`` itself when it has labelled validation tracks, else a :class:`HeldOutValidation` view."""
    if _labelled(dataset, "valid"):
        return dataset
    if _labelled(dataset, "train") < MIN_TRACKS_TO_HOLD_OUT:
        return dataset  # too few to spare any: probes train without early stopping
    return HeldOutValidation(dataset, fraction, seed)
