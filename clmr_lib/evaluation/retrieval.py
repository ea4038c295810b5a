"""Retrieval recall@K of track embeddings: multi-label recall of the metric-learning literature."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def nearest_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` most cosine-similar other rows, most similar first.

    The query itself is excluded. Ties keep the lower index first (a stable sort), so results do
    not depend on the platform.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def recall_at_k(embeddings: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 2, 4, 8)) -> dict:
    """Multi-label recall@K of retrieval by cosine similarity.

    A query scores the fraction of its labels found among the labels of its K nearest neighbours
    (the query excluded); the score is averaged over queries with at least one label. This is the
    multi-label generalisation of the recall@K of deep metric learning; for one-hot labels it
    reduces to the usual recall@K (Song et al., 2016, "Deep metric learning via lifted structured
    feature embedding"): a hit when any of the K neighbours shares the query's class.

    Args:
        embeddings: ``(n, dim)`` track embeddings.
        labels: ``(n, n_classes)`` multi-hot or one-hot labels.
        ks: The K values; a K of ``n`` or more is clipped to ``n - 1`` (every other track).

    Returns:
        ``{"recall@K": value, ...}`` plus ``"queries"`` (how many queries were averaged).
    """
    labels = np.asarray(labels, dtype=bool)
    n = len(labels)
    if n < 2:
        return {**{f"recall@{k}": float("nan") for k in ks}, "queries": 0}
    neighbours = nearest_neighbours(embeddings, min(max(ks), n - 1))
    queries = labels.any(axis=1)
    counts = labels.sum(axis=1)
    result = {}
    for k in ks:
        found = labels[neighbours[:, :min(k, n - 1)]].any(axis=1)  # union of the neighbours' labels
        recall = (found & labels).sum(axis=1)[queries] / counts[queries]
        result[f"recall@{k}"] = float(recall.mean()) if queries.any() else float("nan")
    result["queries"] = int(queries.sum())
    return result
