"""Metrics of music classification: tagging ROC-AUC / PR-AUC, accuracy, top-k, macro F1."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score


def multilabel_metrics(targets: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> dict:
    """Macro ROC-AUC and PR-AUC (scikit-learn), and both per tag.

    Tags without both a positive and a negative example in ``targets`` have no defined AUC; they
    are left out of the macro averages and listed under ``undefined_tags``.
    """
    targets, scores = np.asarray(targets), np.asarray(scores)
    defined = [i for i in range(targets.shape[1]) if 0 < targets[:, i].sum() < len(targets)]
    per_tag = {}
    for i in defined:
        per_tag[class_names[i]] = {"roc_auc": float(roc_auc_score(targets[:, i], scores[:, i])),
                                   "pr_auc": float(average_precision_score(targets[:, i], scores[:, i]))}
    if not defined:
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "per_tag": {}, "undefined_tags": list(class_names)}
    return {
        "roc_auc": float(np.mean([v["roc_auc"] for v in per_tag.values()])),
        "pr_auc": float(np.mean([v["pr_auc"] for v in per_tag.values()])),
        "per_tag": per_tag,
        "undefined_tags": [class_names[i] for i in range(targets.shape[1]) if i not in defined],
    }


def top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of examples whose true class is among the ``k`` highest scores."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # ties: the lower class index first
    return float(np.mean([label in row for label, row in zip(labels, top)]))


def multiclass_metrics(labels: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, top-3 accuracy, macro F1 and the confusion matrix (rows: truth, columns: prediction)."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores)
    predictions = scores.argmax(axis=1)
    confusion = np.zeros((len(class_names), len(class_names)), dtype=int)
    np.add.at(confusion, (labels, predictions), 1)
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "top3_accuracy": top_k_accuracy(labels, scores, 3),
        # Over the classes present in the truth or the predictions (scikit-learn's default): a class
        # with no test tracks that is never predicted has no F1 to average.
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "confusion_matrix": confusion.tolist(),
    }


def task_metrics(task_type: str, targets: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> dict:
    """The metrics of a task type from multi-hot / one-hot ``targets`` and track ``scores``."""
    targets = np.asarray(targets)
    if task_type == "multilabel":
        return multilabel_metrics(targets, scores, class_names)
    return multiclass_metrics(targets.argmax(axis=1), scores, class_names)


#: The headline metrics of each task type, in the order a table shows them.
HEADLINE = {"multilabel": ("roc_auc", "pr_auc"), "multiclass": ("accuracy", "top3_accuracy")}

#: Every scalar metric of each task type, in the order the results table shows them.
TABLE_METRICS = {"multilabel": ("roc_auc", "pr_auc"), "multiclass": ("accuracy", "top3_accuracy", "macro_f1")}
