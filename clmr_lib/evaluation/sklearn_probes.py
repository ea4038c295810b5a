"""Classical probes on frozen embeddings (scikit-learn), hyperparameters chosen on the validation split."""
from __future__ import annotations

import itertools
import warnings
from typing import Callable, Optional, Sequence

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from clmr_lib.evaluation.embeddings import collapse_layers
from clmr_lib.evaluation.metrics import HEADLINE, task_metrics
from clmr_lib.evaluation.threads import single_threaded


def _logreg(seed: int, C: float):
    return LogisticRegression(C=C, max_iter=2000, random_state=seed)


def _knn(seed: int, n_neighbors: int):
    return KNeighborsClassifier(n_neighbors=n_neighbors, metric="cosine", algorithm="brute")


class _SigmoidSVC(SVC):
    """An RBF SVM whose probabilities are the logistic (softmax) of its decision values, uncalibrated.

    For classes too rare for Platt scaling's folds (fewer than 2 training chunks): the scores keep
    the SVM's ranking, which is all ROC-AUC, PR-AUC and top-k accuracy look at.
    """

    def predict_proba(self, x):
        decision = np.asarray(self.decision_function(x), dtype=np.float64)
        if decision.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-decision))
            return np.stack([1.0 - positive, positive], axis=1)
        decision = np.exp(decision - decision.max(axis=1, keepdims=True))
        return decision / decision.sum(axis=1, keepdims=True)


def _svm(seed: int, C: float, folds: int = 3):
    # Platt scaling fitted on 3-fold out-of-fold decision values, one SVM refitted on all the data
    # (SVC(probability=True), deprecated in scikit-learn 1.9, did the same with 5 folds). Fewer
    # folds when a class has fewer than 3 training chunks; none (_SigmoidSVC) below 2.
    if folds < 2:
        return _SigmoidSVC(C=C, kernel="rbf", random_state=seed)
    return CalibratedClassifierCV(SVC(C=C, kernel="rbf", random_state=seed), method="sigmoid", cv=folds,
                                  ensemble=False)


def smallest_class(y: np.ndarray, task_type: str) -> int:
    """Training chunks of the rarest class a binary/multiclass fit sees (per tag: the rarer of yes and no).

    Tags that are constant over the training chunks are left out: one-vs-rest fits them no model.
    """
    y = np.asarray(y)
    if task_type == "multilabel":
        positives = y.astype(bool).sum(axis=0)
        counts = np.minimum(positives, len(y) - positives)
    else:
        counts = np.bincount(y.argmax(axis=1))
    counts = counts[counts > 0]
    return int(counts.min()) if len(counts) else 0


def _forest(seed: int, min_samples_leaf: int):
    return RandomForestClassifier(n_estimators=200, min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=1)


#: name -> (constructor(seed, **params), grid, handles multi-label natively, description). Grids
#: stay small: every point is one fit on the training chunks.
SKLEARN_PROBES: dict[str, tuple[Callable, dict, bool, str]] = {
    "logreg": (_logreg, {"C": [0.01, 0.1, 1.0, 10.0]}, False, "logistic regression"),
    "knn": (_knn, {"n_neighbors": [5, 20, 50]}, True, "k-nearest neighbours (cosine)"),
    "svm": (_svm, {"C": [1.0, 10.0]}, False, "RBF support vector machine (Platt probabilities)"),
    "rf": (_forest, {"min_samples_leaf": [1, 5]}, True, "random forest, 200 trees"),
}


class SklearnProbe:
    """A fitted scikit-learn classifier on standardised chunk embeddings, with the probe interface.

    ``predict_proba(chunks)`` returns ``(n_chunks, n_classes)`` probabilities over the task's full
    class list (a class absent from the training chunks gets probability 0), so track-level
    averaging and the metrics treat it exactly like the Lightning probes.

    Args:
        name: Key in :data:`SKLEARN_PROBES`.
        model: The fitted classifier.
        scaler: The fitted standardisation.
        task_type: ``"multilabel"`` or ``"multiclass"``.
        n_classes: Size of the task's class list.
        params: The chosen hyperparameters.
        grid: Validation score of every grid point (JSON-ready).
    """

    def __init__(self, name: str, model, scaler: StandardScaler, task_type: str, n_classes: int,
                 params: dict, grid: Optional[list] = None):
        self.name, self.model, self.scaler = name, model, scaler
        self.task_type, self.n_classes = task_type, n_classes
        self.params, self.grid = params, grid or []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Chunk probabilities: one column per class of the task."""
        x = self.scaler.transform(collapse_layers(np.asarray(x, dtype=np.float32)))
        out = np.zeros((len(x), self.n_classes), dtype=np.float64)
        raw = self.model.predict_proba(x)
        if self.task_type == "multiclass":
            out[:, self.model.classes_.astype(int)] = raw
            return out
        if isinstance(raw, list):  # native multi-output: one (n, n_seen_values) array per label
            for j, (values, proba) in enumerate(zip(self.model.classes_, raw)):
                seen = list(np.asarray(values).astype(int))
                out[:, j] = proba[:, seen.index(1)] if 1 in seen else 0.0
            return out
        return np.asarray(raw, dtype=np.float64)


def subsample(x: np.ndarray, y: np.ndarray, limit: Optional[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` training chunks, drawn without replacement with ``seed`` (kernel SVMs scale badly)."""
    if not limit or len(x) <= limit:
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(len(x), size=int(limit), replace=False))
    return x[keep], y[keep]


def _fit(name: str, params: dict, x: np.ndarray, y: np.ndarray, task_type: str, seed: int):
    make, _, native_multilabel, _ = SKLEARN_PROBES[name]
    if "n_neighbors" in params:  # a tiny training set has fewer chunks than the grid's k
        params = dict(params, n_neighbors=min(params["n_neighbors"], len(x)))
    extra = {"folds": min(3, smallest_class(y, task_type))} if name == "svm" else {}
    model = make(seed, **params, **extra)
    if task_type == "multilabel":
        if not native_multilabel:
            model = OneVsRestClassifier(model)
        target = y.astype(int)
    else:
        target = y.argmax(axis=1)
    with warnings.catch_warnings():
        # A tag absent from (or present in) every training chunk gets a constant predictor; the
        # metrics already report tags whose AUC is undefined.
        warnings.filterwarnings("ignore", message=".*Label not .* is present in all training examples.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="sklearn.multiclass")
        model.fit(x, target)
    return model


def _selection_score(probe: SklearnProbe, valid: tuple[Sequence, np.ndarray], task_type: str,
                     class_names: Sequence[str]) -> tuple:
    embeddings, targets = valid
    scores = np.stack([probe.predict_proba(e).mean(0) for e in embeddings])
    metrics = task_metrics(task_type, targets, scores, class_names)
    return tuple(-np.inf if np.isnan(metrics[m]) else metrics[m] for m in HEADLINE[task_type])


def fit_sklearn_probe(name: str, train: tuple[np.ndarray, np.ndarray], valid: Optional[tuple[Sequence, np.ndarray]],
                      task_type: str, class_names: Sequence[str], seed: int = 42,
                      max_train_chunks: Optional[int] = 10000) -> SklearnProbe:
    """Fit a classical probe; its hyperparameters are chosen on the validation split at track level.

    Every grid point is fitted on the (standardised) training chunks and scored on the validation
    tracks exactly as the test tracks will be scored — chunk probabilities averaged per track,
    then the task's first headline metric (macro ROC-AUC or accuracy; the second one breaks ties,
    then the earlier, simpler grid point wins). The model of the best grid point, fitted on the
    training split only, is kept: like the Lightning probes, it never trains on validation data.
    Without a validation split the first grid point is used. Multi-label tasks use one binary
    classifier per tag (one-vs-rest) for logistic regression and the SVM; k-NN and the random
    forest predict all tags natively.

    Args:
        name: ``"logreg"``, ``"knn"``, ``"svm"`` or ``"rf"``.
        train: Chunk embeddings and their tracks' labels (multi-hot / one-hot), as NumPy arrays.
        valid: Per-track chunk embeddings of the validation split and the ``(n_tracks, n_classes)`` labels.
        task_type: ``"multilabel"`` or ``"multiclass"``.
        class_names: The task's classes.
        seed: Random state of the SVM's Platt scaling, the forest and the training subsample.
        max_train_chunks: Fit on at most this many training chunks (``None``/0: all).
    """
    if name not in SKLEARN_PROBES:
        raise ValueError(f"unknown scikit-learn probe '{name}'")
    with single_threaded():
        return _grid_search(name, train, valid, task_type, class_names, seed, max_train_chunks)


def _grid_search(name, train, valid, task_type, class_names, seed, max_train_chunks) -> SklearnProbe:
    x = collapse_layers(np.asarray(train[0], dtype=np.float32))
    x, y = subsample(x, np.asarray(train[1]), max_train_chunks, seed)
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x)
    _, grid, _, _ = SKLEARN_PROBES[name]
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if valid is None or not len(valid[0]):
        params = points[0]
        return SklearnProbe(name, _fit(name, params, x, y, task_type, seed), scaler, task_type, len(class_names),
                            params, [{"params": params, "valid": None}])
    best, scored = None, []
    for params in points:
        probe = SklearnProbe(name, _fit(name, params, x, y, task_type, seed), scaler, task_type, len(class_names),
                             params)
        score = _selection_score(probe, valid, task_type, class_names)
        scored.append({"params": params, "valid": dict(zip(HEADLINE[task_type], map(float, score)))})
        if best is None or score > best[0]:
            best = (score, probe)
    best[1].grid = scored
    return best[1]
