"""Linear evaluation: freeze encoders, embed a labelled dataset once, train probes, compare on track-level metrics."""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from torch import nn

from clmr_lib.data import get_dataset
from clmr_lib.data.report import SkipReport
from clmr_lib.errors import UserError
from clmr_lib.evaluation.cache import EmbeddingCache
from clmr_lib.evaluation.embeddings import chunk_hop, embed_splits, track_embeddings
from clmr_lib.evaluation.metrics import task_metrics
from clmr_lib.evaluation.probe import chunk_arrays, fit_probe, track_predictions
from clmr_lib.evaluation.report import (prediction_records, results_table, slug, write_comparison_files, write_json,
                                       write_run_files)
from clmr_lib.evaluation.retrieval import recall_at_k
from clmr_lib.evaluation.sklearn_probes import SKLEARN_PROBES, fit_sklearn_probe
from clmr_lib.evaluation.splits import (HeldOutValidation, reports_on_validation, selection_view,
                                       selects_on_held_out_training, with_validation)

#: Probes ``--probes`` accepts: Lightning-trained ones first, then the classical ones.
PROBE_NAMES = ("linear", "mlp") + tuple(SKLEARN_PROBES)
#: ``--checkpoint`` values that are baselines rather than files.
BASELINES = ("random", "supervised", "mfcc")
SPLITS = ("train", "valid", "test")


def _as_list(value) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def probe_names(config: dict) -> list[str]:
    """The probes to train: ``--probes`` (comma list or ``all``); CLMR's ``--finetuner_mlp 1`` means ``mlp``."""
    names = [n.lower() for n in _as_list(config.get("probes", "linear"))] or ["linear"]
    if names == ["all"]:
        names = list(PROBE_NAMES)
    if names == ["linear"] and int(config.get("finetuner_mlp", 0) or 0):
        names = ["mlp"]
    unknown = [n for n in names if n not in PROBE_NAMES]
    if unknown:
        raise UserError(f"unknown probe '{unknown[0]}' (--probes); choose from {', '.join(PROBE_NAMES)} "
                        "(comma-separated) or all")
    return list(dict.fromkeys(names))


def encoder_names(config: dict) -> list[str]:
    """Encoders to compare: ``--checkpoint`` (repeatable or comma list); ``--supervised 1`` adds the supervised one."""
    names = _as_list(config.get("checkpoint_path"))
    if not names and config.get("encoder") == "musicfm":
        names = [str(config.get("musicfm_checkpoint") or "musicfm")]
    if int(config.get("supervised", 0) or 0) and "supervised" not in names:
        names.append("supervised")
    if not names:
        raise UserError("no encoder to evaluate: pass --checkpoint PATH (or a baseline: --checkpoint random, "
                        "supervised or mfcc; several as --checkpoint a.ckpt --checkpoint random)")
    return list(dict.fromkeys(names))


def _labels(tracks, n_classes: int) -> list:
    return [None if t.label is None else t.label_array(n_classes) for t in tracks]


def _fit(name: str, embeddings: dict, labels: dict, dataset, config: dict):
    """Train probe ``name`` on the training chunks, select on the validation split; returns (probe, details)."""
    if name in ("linear", "mlp"):
        valid = chunk_arrays(embeddings["valid"], labels["valid"])
        probe = fit_probe(chunk_arrays(embeddings["train"], labels["train"]), valid if len(valid[0]) else None,
                          dataset.task_type, mlp=name == "mlp", max_epochs=int(config["finetuner_max_epochs"]),
                          batch_size=int(config["finetuner_batch_size"]),
                          learning_rate=float(config["finetuner_learning_rate"]),
                          weight_decay=float(config.get("weight_decay", 1e-6)), seed=int(config["seed"]))
        weights = probe.layer_weights()
        details = {"history": probe.history,
                   "hyperparameters": {"learning_rate": float(config["finetuner_learning_rate"]),
                                       "batch_size": int(config["finetuner_batch_size"]),
                                       "max_epochs": int(config["finetuner_max_epochs"])}}
        if weights is not None:
            details["layer_weights"] = [round(float(w), 6) for w in weights.detach()]
        return probe, details
    x, y = chunk_arrays(embeddings["train"], labels["train"])
    keep = [i for i, (emb, label) in enumerate(zip(embeddings["valid"], labels["valid"]))
            if emb is not None and len(emb) and label is not None]
    valid = ([embeddings["valid"][i] for i in keep], np.stack([labels["valid"][i] for i in keep])) if keep else None
    limit = int(config.get("sklearn_max_train_chunks", 0) or 0) or None
    probe = fit_sklearn_probe(name, (x.numpy(), y.numpy()), valid, dataset.task_type, dataset.class_names,
                              seed=int(config["seed"]), max_train_chunks=limit)
    return probe, {"hyperparameters": probe.params, "grid": probe.grid}


def _selection_splits(dataset, splits: dict, embeddings: dict, labels: dict, seed: int) -> tuple[dict, dict]:
    """Embeddings and labels of the ``train`` and ``valid`` tracks probes are fitted and selected on.

    The dataset's own, unless metrics are reported on its validation split: then both come out of
    the training split (:func:`~clmr_lib.evaluation.splits.selection_view`), embeddings reused.
    """
    view = selection_view(dataset, seed)
    if view is dataset:
        return embeddings, labels
    index = {id(track): i for i, track in enumerate(splits["train"])}
    picked = {s: [index[id(track)] for track in view.tracks(s)] for s in ("train", "valid")}
    return ({s: [embeddings["train"][i] for i in rows] for s, rows in picked.items()},
            {s: [labels["train"][i] for i in rows] for s, rows in picked.items()})


def _retrieval(embeddings: dict, labels: dict, split: str, ks: Sequence[int]) -> dict:
    """Recall@K on the evaluation split's track embeddings, centred on the training split's mean.

    Centring removes the direction every embedding shares (post-ReLU embeddings are all positive,
    which would make every cosine similarity high); it uses no labels.
    """
    train, _ = track_embeddings(embeddings["train"])
    tracks, kept = track_embeddings(embeddings[split])
    kept_labelled = [j for j, i in enumerate(kept) if labels[split][i] is not None]
    if len(kept_labelled) < 2:
        return {**{f"recall@{k}": float("nan") for k in ks}, "queries": 0}
    centre = train.mean(0) if len(train) else 0.0
    x = tracks[kept_labelled] - centre
    y = np.stack([labels[split][kept[j]] for j in kept_labelled])
    return recall_at_k(x, y, ks)


def evaluate_encoder(encoder: nn.Module, dataset, config: dict, cache=None, progress: bool = True,
                     probes: Optional[Sequence[str]] = None, extra_probes: Optional[dict] = None) -> dict:
    """Probe ``encoder`` on ``dataset``'s task: train on train, select on valid, report on test (track level).

    Chunk embeddings are computed once (see :func:`embed_splits`); each probe is trained on the
    training chunks, and a test track's prediction is the mean of its chunk probabilities. When the
    test split is unlabelled (artist20's course layout), metrics are reported on the validation
    split instead (``split`` says which) and the test split gets predictions only.

    Args:
        encoder: A frozen encoder.
        dataset: A labelled dataset (``task_type``, ``class_names``, ``tracks(split)``).
        config: Probe settings (``finetuner_*``, ``probes``, ``seed``, ``retrieval_k``, ...).
        cache: Embedding cache, as for :func:`embed_splits`.
        progress: Show progress bars.
        probes: Probe names (default: :func:`probe_names` of the config).
        extra_probes: Already trained probes to score too, ``name -> object with predict_proba``
            (the supervised model's own head).

    Returns:
        ``metrics`` (of the first probe), ``split``, ``runs`` (one per probe: ``probe``, ``metrics``,
        ``details``), ``retrieval``, ``n_tracks``, ``skipped`` and ``predictions``
        (``probe -> split -> per-track records``).
    """
    splits = {s: dataset.tracks(s) for s in SPLITS}
    n_classes = len(dataset.class_names)
    labels = {s: _labels(tracks, n_classes) for s, tracks in splits.items()}
    if not any(label is not None for label in labels["train"]):
        raise UserError(f"dataset '{config['dataset']}' has no labelled training tracks; check --dataset_dir")
    split = "valid" if reports_on_validation(dataset) else "test"
    if not any(label is not None for label in labels[split]):
        raise UserError(f"dataset '{config['dataset']}' has no labelled test or validation tracks to report metrics "
                        "on; check --dataset_dir")
    embeddings = embed_splits(encoder, splits, config, cache=cache, progress=progress)
    fit_embeddings, fit_labels = _selection_splits(dataset, splits, embeddings, labels, int(config["seed"]))
    skipped = SkipReport()
    skipped.merge(getattr(dataset, "skipped", SkipReport()))
    for s, tracks in splits.items():
        for track, emb in zip(tracks, embeddings[s]):
            if emb is None:
                skipped.add(track.path, "could not be decoded for evaluation")

    trained = {}
    for name in probes or probe_names(config):
        start = time.perf_counter()
        probe, details = _fit(name, fit_embeddings, fit_labels, dataset, config)
        trained[name] = (probe, dict(details, fit_seconds=round(time.perf_counter() - start, 2)))
    for name, probe in (extra_probes or {}).items():
        trained[name] = (probe, {})
    runs, predictions = [], {}
    for name, (probe, details) in trained.items():
        scores = {s: track_predictions(probe, embeddings[s]) for s in dict.fromkeys((split, "test"))}
        keep = [i for i, (p, y) in enumerate(zip(scores[split], labels[split])) if p is not None and y is not None]
        metrics = task_metrics(dataset.task_type, np.stack([labels[split][i] for i in keep]),
                               np.stack([scores[split][i] for i in keep]), dataset.class_names)
        runs.append({"probe": name, "metrics": metrics, "n_tracks": len(keep), "details": details})
        predictions[name] = {s: prediction_records(splits[s], scores[s], labels[s]) for s in scores}
    retrieval = _retrieval(embeddings, labels, split, [int(k) for k in config.get("retrieval_k", (1, 2, 4, 8))])
    return {
        "metrics": runs[0]["metrics"],
        "split": split,
        "runs": runs,
        "retrieval": retrieval,
        "n_tracks": {s: len(t) for s, t in splits.items()},
        "skipped": [{"path": p, "reason": r} for p, r in skipped.items()],
        "predictions": predictions,
    }


def encoder_layout(encoder: nn.Module) -> dict:
    """Config keys that make a baseline match ``encoder``: sample rate, chunk length, SampleCNN layout."""
    layout = {}
    if hasattr(encoder, "sample_rate") and hasattr(encoder, "audio_length"):
        layout.update(sample_rate=int(encoder.sample_rate), audio_length=int(encoder.audio_length))
    if hasattr(encoder, "channels") and hasattr(encoder, "strides"):
        layout.update(sample_cnn_channels=list(encoder.channels), sample_cnn_strides=list(encoder.strides))
    return layout


def _output_dir(config: dict, dataset) -> Path:
    root = Path(config.get("output_dir") or Path(config.get("log_dir", "runs")) / "evaluation")
    return root / slug(config.get("run_name") or f"{config['dataset']}_{getattr(dataset, 'task', '') or 'task'}")


def cache_dir(config: dict) -> Optional[Path]:
    """The embedding cache folder (``--embedding_cache_dir``, default ``<log_dir>/embeddings``); None when off."""
    folder = str(config.get("embedding_cache_dir", "") or "")
    if folder.lower() in ("none", "off", "false", "0"):
        return None
    return Path(folder) if folder else Path(config.get("log_dir", "runs")) / "embeddings"


def _cache_for(encoder: nn.Module, name: str, config: dict):
    folder = cache_dir(config)
    if folder is None:
        return None
    return EmbeddingCache(str(folder), encoder, int(encoder.audio_length), chunk_hop(config, encoder.audio_length),
                          description={"encoder_name": name}, precision=str(config.get("precision", "32-true")))


def _build_encoder(name: str, loaded: dict, baseline: dict, dataset, progress: bool) -> tuple:
    """The frozen encoder called ``name``, its display name, and extra trained probes (the supervised head)."""
    from clmr_lib.checkpoints import load_encoder
    from clmr_lib.models.frozen import frozen_encoder_from_config
    from clmr_lib.training.supervised import EndToEndHead, train_supervised

    if name == "supervised":
        # Its own representation (the last block), which its classification layer reads.
        checkpoint, curves = train_supervised(baseline, selection_view(dataset, int(baseline["seed"])),
                                              progress=progress)
        return (load_encoder(checkpoint), name, {"end-to-end": EndToEndHead.from_checkpoint(checkpoint)},
                {"history": curves, "checkpoint": str(checkpoint)})
    if name in loaded:
        return (*loaded.pop(name), {}, {})
    return (*frozen_encoder_from_config(dict(baseline, checkpoint_path=name)), {}, {})


RETRIEVAL_DEFINITION = ("multi-label recall@K: fraction of the query's labels among its K nearest neighbours' "
                        "labels (cosine, train-mean-centred track embeddings, query excluded); for single-label "
                        "tasks a hit if any neighbour shares the class")


def warn_reduced_precision_baseline(names: Sequence[str], config: dict) -> bool:
    """Warn when a randomly initialised encoder is embedded below float32; True if it warned.

    Its activations are unnormalised, so bf16 rounding costs it far more than a trained encoder
    (measured on the synthetic data: tag ROC-AUC 0.734 -> 0.628 random, 0.810 -> 0.809 trained),
    which would flatter the pretrained encoder in the comparison.
    """
    from clmr_lib.utils.precision import is_full_precision

    precision = str(config.get("precision", "32-true"))
    if "random" not in names or is_full_precision(precision):
        return False
    warnings.warn(f"--precision {precision} also embeds the `random` baseline, whose features lose much more to "
                  "bf16 rounding than a trained encoder's; compare with --precision 32-true for a fair baseline",
                  stacklevel=2)
    return True


def run_linear_evaluation(config: dict) -> dict:
    """Evaluate every ``--checkpoint`` (and baseline) with every ``--probes`` probe; write and compare the results.

    Baselines (``random``, ``supervised``, ``mfcc``) take the sample rate, chunk length and
    SampleCNN layout of the first checkpoint compared, so that one table compares like with like;
    alone, they take the config's. A dataset without a validation split gets one held out of its
    training split (:mod:`clmr_lib.evaluation.splits`). Writes, under
    ``<output_dir>/<dataset>_<task>/``: ``results.json`` (every metric with dataset, task, split,
    encoder, probe and seed), ``predictions/<encoder>__<probe>.json`` (per-track scores and
    targets), ``table.txt``, ``plots/*.png`` and, when the test split is unlabelled,
    ``test_pred.json`` (top-3 classes of each test file, from the first encoder and probe).

    Returns:
        ``results`` and ``retrieval`` records, the ``table`` text, ``output_dir``, ``path`` (results.json)
        and ``files`` (the other outputs, relative to ``output_dir``).
    """
    from clmr_lib.models.frozen import frozen_encoder_from_config
    from clmr_lib.utils.memory import keep_freed_memory

    if config.get("reuse_memory", True):
        keep_freed_memory()
    names, probes = encoder_names(config), probe_names(config)
    progress = bool(config.get("progress", True))
    loaded, layout = {}, {}
    for name in names:  # checkpoints first: the baselines copy the first one's layout
        if name not in BASELINES:
            loaded[name] = frozen_encoder_from_config(dict(config, checkpoint_path=name))
            layout = layout or encoder_layout(loaded[name][0])
    config = dict(config, **layout)
    seed = int(config["seed"])
    warn_reduced_precision_baseline(names, config)
    dataset = with_validation(get_dataset(config), seed)
    task = getattr(dataset, "task", "") or config["dataset"]
    out = _output_dir(config, dataset)
    variant = getattr(dataset, "variant", "")
    context = {"dataset": config["dataset"], "task": task, "task_type": dataset.task_type,
               **({"variant": variant} if variant else {})}
    results, retrieval, skipped, n_tracks = [], [], {}, {}
    for name in names:
        encoder, name, extra, extra_details = _build_encoder(name, loaded, dict(config, encoder="sample_cnn"),
                                                             dataset, progress)
        result = evaluate_encoder(encoder, dataset, config, cache=_cache_for(encoder, name, config),
                                  progress=progress, probes=probes, extra_probes=extra)
        del encoder
        n_tracks = result["n_tracks"]
        skipped.update({s["path"]: s["reason"] for s in result["skipped"]})
        for run in result["runs"]:
            record = {**context, "split": result["split"], "encoder": name, "probe": run["probe"], "seed": seed,
                      "n_tracks": run["n_tracks"], "metrics": run["metrics"],
                      "details": dict(run["details"], **(extra_details if run["probe"] in extra else {}))}
            record.update(write_run_files(out, record, result["predictions"][run["probe"]], dataset.class_names,
                                          plots=bool(config.get("plots", True))))
            results.append(record)
        retrieval.append({**context, "split": result["split"], "encoder": name, "probe": "retrieval", "seed": seed,
                          "metrics": result["retrieval"], "definition": RETRIEVAL_DEFINITION})
    split = results[0]["split"]
    notes = (["test split unlabelled: metrics on the validation split"
              + (", probes selected on 10% of the training tracks held out"
                 if selects_on_held_out_training(dataset) else "")] if split == "valid" else []) \
        + (["validation: 10% of the training tracks held out"] if isinstance(dataset, HeldOutValidation) else [])
    title = (f"{config['dataset']}{f' ({variant})' if variant else ''}/{task}: {split} split, track level (chunk predictions averaged), seed {seed}"
             + "".join(f"  [{note}]" for note in notes))
    table = results_table(results, retrieval, title)
    files = write_comparison_files(out, results, table, dataset.class_names, plots=bool(config.get("plots", True)))
    summary = {**context, "split": split, "seed": seed, "class_names": list(dataset.class_names),
               "n_tracks": n_tracks,
               "settings": {"sample_rate": int(config["sample_rate"]), "chunk_length": int(config["audio_length"]),
                            "chunk_hop": chunk_hop(config, int(config["audio_length"])), "probes": probes,
                            "precision": str(config.get("precision", "32-true")),
                            "validation": "10% of the training tracks held out (the dataset has no validation "
                                          "split)" if isinstance(dataset, HeldOutValidation) else
                                          "10% of the training tracks held out (the dataset's validation split "
                                          "reports the metrics)" if selects_on_held_out_training(dataset) else
                                          "the dataset's",
                            "encoders": names, "baseline_layout": layout or None},
               "results": results, "retrieval": retrieval, "files": files,
               "skipped": [{"path": p, "reason": r} for p, r in skipped.items()]}
    path = write_json(summary, out / "results.json")
    return {"results": results, "retrieval": retrieval, "table": table, "output_dir": str(out), "path": str(path),
            "files": files}
