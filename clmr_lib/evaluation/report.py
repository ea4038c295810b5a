"""Evaluation outputs: the comparison table, per-track prediction files and the course's test_pred.json."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.evaluation.metrics import TABLE_METRICS

#: Short column titles of the table.
COLUMN_TITLES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "accuracy": "acc", "top3_accuracy": "top3-acc",
                 "macro_f1": "macro-F1"}



def _variant(record: dict) -> str:
    """`` (pons2017 split)`` for a record naming its benchmark variant, else empty."""
    return f" ({record['variant']})" if record.get("variant") else ""

def slug(text: str) -> str:
    """A file-name-safe version of an encoder or probe name (``runs/demo/last.ckpt`` → ``runs_demo_last.ckpt``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_.") or "encoder"


def short_name(name: str, width: int = 40) -> str:
    """An encoder name that fits a table column: long paths keep their end."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _cell(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def results_table(results: Sequence[dict], retrieval: Sequence[dict] = (), title: str = "") -> str:
    """The printed comparison: one line per (encoder, probe), then retrieval recall@K per encoder.

    Args:
        results: Records with ``encoder``, ``probe``, ``task_type`` and ``metrics``.
        retrieval: Records with ``encoder`` and ``metrics`` (``recall@K`` keys).
        title: First line.
    """
    lines = [title] if title else []
    if results:
        metrics = TABLE_METRICS[results[0]["task_type"]]
        width = max(12, *(len(short_name(r["encoder"])) for r in results))
        header = f"{'encoder':<{width}}  {'probe':<11}" + "".join(f"{COLUMN_TITLES.get(m, m):>10}" for m in metrics)
        lines += [header, "-" * len(header)]
        for r in results:
            lines.append(f"{short_name(r['encoder']):<{width}}  {r['probe']:<11}"
                         + "".join(f"{_cell(r['metrics'].get(m)):>10}" for m in metrics))
    if retrieval:
        keys = [k for k in retrieval[0]["metrics"] if k.startswith("recall@")]
        width = max(12, *(len(short_name(r["encoder"])) for r in retrieval))
        header = f"{'encoder':<{width}}  {'retrieval':<11}" + "".join(f"{k.replace('recall', 'R'):>10}" for k in keys)
        lines += ["", header, "-" * len(header)]
        for r in retrieval:
            lines.append(f"{short_name(r['encoder']):<{width}}  {'cosine':<11}"
                         + "".join(f"{_cell(r['metrics'].get(k)):>10}" for k in keys))
    return "\n".join(lines)


def write_json(data, path: str | Path) -> Path:
    """Pretty JSON, written atomically."""
    atomic_write_bytes((json.dumps(data, indent=2, default=_json_default) + "\n").encode(), path)
    return Path(path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def prediction_records(tracks: Sequence, scores: Sequence[Optional[np.ndarray]],
                       targets: Sequence[Optional[np.ndarray]]) -> list[dict]:
    """One record per predicted track: id, path, the averaged scores and the target (``None`` if unlabelled).

    Scores are saved at full precision (JSON floats round-trip exactly): rounding would create ties
    that a recomputed argmax breaks differently (k-NN probabilities tie often).
    """
    return [{"track_id": t.track_id, "path": t.path, "scores": np.asarray(s, dtype=np.float64).tolist(),
             "target": None if y is None else np.asarray(y).astype(int).tolist()}
            for t, s, y in zip(tracks, scores, targets) if s is not None]


def top_k_names(scores: np.ndarray, class_names: Sequence[str], k: int = 3) -> list[str]:
    """The ``k`` highest-scoring class names, best first (ties: the earlier class)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return [class_names[i] for i in order]


def write_test_pred(records: Sequence[dict], class_names: Sequence[str], path: str | Path, k: int = 3) -> Path:
    """The artist20 course's submission file: ``{track_id: [top-1, top-2, top-3 class names]}``."""
    return write_json({r["track_id"]: top_k_names(np.array(r["scores"]), class_names, k) for r in records}, path)


def write_run_files(out: Path, record: dict, predictions: dict, class_names: Sequence[str], plots: bool = True) -> dict:
    """Write one (encoder, probe) run's per-track predictions and figures under ``out``.

    ``predictions/<encoder>__<probe>.json`` holds, per split scored, each track's id, path, scores
    (mean chunk probabilities, in ``class_names`` order) and target; the figures are its confusion
    matrix (single-label), per-tag AUC bars (multi-label) and training curves (Lightning-trained).

    Returns:
        ``{"predictions": path, "plots": [paths]}`` relative to ``out``, for the results record.
    """
    stem = f"{slug(record['encoder'])}__{record['probe']}"
    activation = "sigmoid" if record["task_type"] == "multilabel" else "softmax"
    write_json({**{k: record[k] for k in ("dataset", "variant", "task", "task_type", "encoder", "probe", "seed")
                   if k in record},
                "class_names": list(class_names), "score": f"mean over chunks of {activation} probabilities",
                "splits": predictions}, out / "predictions" / f"{stem}.json")
    files = {"predictions": f"predictions/{stem}.json"}
    if plots:
        from clmr_lib.evaluation import plots as figures

        drawn = []
        title = (f"{record['dataset']}{_variant(record)}/{record['task']} ({record['split']}), {record['encoder']}, "
                 f"{record['probe']}")
        metrics, history = record["metrics"], record["details"].get("history")
        if "confusion_matrix" in metrics:
            drawn.append(figures.plot_confusion_matrix(metrics["confusion_matrix"], class_names,
                                                       out / "plots" / f"confusion_{stem}.png", title))
        if metrics.get("per_tag"):
            drawn.append(figures.plot_per_tag_auc(metrics["per_tag"], out / "plots" / f"per_tag_{stem}.png", title))
        if history and history.get("epochs"):
            drawn.append(figures.plot_training_curves({record["probe"]: history},
                                                      out / "plots" / f"curves_{stem}.png", title))
        files["plots"] = [str(Path(p).relative_to(out)) for p in drawn]
    return files


def write_comparison_files(out: Path, results: Sequence[dict], table: str, class_names: Sequence[str],
                           plots: bool = True) -> dict:
    """Write ``table.txt``, the comparison chart and, for an unlabelled test split, ``test_pred.json``.

    ``test_pred.json`` (artist20's course layout) takes the first encoder's first probe.

    Returns:
        The files written, relative to ``out`` (``results.json`` included, written by the caller).
    """
    from clmr_lib.evaluation.metrics import HEADLINE

    first = results[0]
    atomic_write_bytes((table + "\n").encode(), out / "table.txt")
    files = {"results": "results.json", "table": "table.txt"}
    if plots:
        from clmr_lib.evaluation.plots import plot_comparison

        metric = HEADLINE[first["task_type"]][0]
        plot_comparison(results, metric, out / "plots" / "comparison.png",
                        f"{first['dataset']}{_variant(first)}/{first['task']}: {metric} ({first['split']} split)")
        files["comparison_plot"] = "plots/comparison.png"
    saved = json.loads((out / first["predictions"]).read_text(encoding="utf-8"))["splits"]
    unlabelled = [r for r in saved.get("test", []) if r["target"] is None]
    if unlabelled and first["task_type"] == "multiclass":
        write_test_pred(unlabelled, class_names, out / "test_pred.json")
        files["test_pred"] = "test_pred.json"
        files["test_pred_from"] = f"{first['encoder']}, {first['probe']} probe"
    return files
