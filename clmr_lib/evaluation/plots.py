"""Evaluation figures as PNG: confusion matrix, per-tag ROC-AUC, probe training curves, comparison bars."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from clmr_lib.checkpoints import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or assumed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(buffer.getvalue(), path)
    return Path(path)


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                          title: str = "") -> Path:
    """Confusion matrix (rows: truth, columns: prediction) with counts, shaded by row-normalised recall."""
    plt = _pyplot()
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_tag_auc(per_tag: dict, path: str | Path, title: str = "") -> Path:
    """Horizontal bars of each tag's ROC-AUC (and PR-AUC), best tag first, chance level marked."""
    plt = _pyplot()
    tags = sorted(per_tag, key=lambda t: per_tag[t]["roc_auc"], reverse=True)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * len(tags) + 1.5)))
    y = np.arange(len(tags))
    ax.barh(y - 0.2, [per_tag[t]["roc_auc"] for t in tags], height=0.4, label="ROC-AUC")
    ax.barh(y + 0.2, [per_tag[t]["pr_auc"] for t in tags], height=0.4, label="PR-AUC")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="ROC-AUC chance")
    ax.set_yticks(y, tags, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(histories: dict, path: str | Path, title: str = "") -> Path:
    """Training and validation loss per epoch of one or more Lightning-trained models.

    Args:
        histories: ``label -> history`` as recorded by :class:`clmr_lib.evaluation.probe.History`.
        path: Output PNG.
        title: Figure title.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, history) in enumerate(histories.items()):
        epochs = history.get("epochs", [])
        color = f"C{i % 10}"
        for key, style in (("train_loss", "-"), ("valid_loss", "--")):
            points = [(e["epoch"], e[key]) for e in epochs if key in e]
            if points:
                ax.plot(*zip(*points), style, color=color, label=f"{label} {key.split('_')[0]}")
        if history.get("best_epoch") is not None:
            ax.axvline(history["best_epoch"], color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title(title + "\n(dotted: epoch kept by early stopping)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_comparison(rows: list[dict], metric: str, path: str | Path, title: str = "") -> Path:
    """Grouped bars of one metric: one group per probe, one bar per encoder."""
    plt = _pyplot()
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    probes = list(dict.fromkeys(r["probe"] for r in rows))
    values = {(r["encoder"], r["probe"]): r["metrics"].get(metric) for r in rows}
    width = 0.8 / max(len(encoders), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(probes) + 2), 4.6))
    for i, encoder in enumerate(encoders):
        xs = [j + (i - (len(encoders) - 1) / 2) * width for j in range(len(probes))]
        heights = [values.get((encoder, p)) for p in probes]
        ax.bar([x for x, h in zip(xs, heights) if h is not None], [h for h in heights if h is not None],
               width=width, label=encoder)
    ax.set_xticks(range(len(probes)), probes)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    # Below the axes: bars reach the top for good encoders, and a legend inside would cover them.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(encoders), 3),
              frameon=False)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
