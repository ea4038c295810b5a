"""Linear evaluation: freeze an encoder, embed a labelled dataset, train a probe, report test metrics."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from torch import nn

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.data import get_dataset
from clmr_lib.data.report import SkipReport
from clmr_lib.errors import UserError
from clmr_lib.evaluation.embeddings import extract_embeddings
from clmr_lib.evaluation.metrics import multiclass_metrics, multilabel_metrics
from clmr_lib.evaluation.probe import chunk_arrays, fit_probe, track_predictions
from clmr_lib.models.frozen import frozen_encoder_from_config


def evaluate_encoder(encoder: nn.Module, dataset, config: dict, cache: Optional[dict] = None,
                     progress: bool = True) -> dict:
    """Probe ``encoder`` on ``dataset``'s task: train on train, stop on valid, report on test.

    Returns a dict with the metrics, the per-track test predictions and the skipped files.
    """
    splits = {s: dataset.tracks(s) for s in ("train", "valid", "test")}
    if not splits["train"] or not splits["test"]:
        raise UserError(f"dataset '{config['dataset']}' has no labelled train or test tracks; check --dataset_dir")
    n_classes = len(dataset.class_names)
    embeddings, skipped = {}, SkipReport()
    skipped.merge(dataset.skipped)
    for split, tracks in splits.items():
        embeddings[split] = extract_embeddings(encoder, tracks, encoder.audio_length,
                                               batch_size=int(config.get("embedding_batch_size", 64)),
                                               workers=int(config.get("workers", 0)), cache=cache, progress=progress)
        for track, emb in zip(tracks, embeddings[split]):
            if emb is None:
                skipped.add(track.path, "could not be decoded for evaluation")
    labels = {s: [t.label_array(n_classes) for t in tracks] for s, tracks in splits.items()}
    probe = fit_probe(chunk_arrays(embeddings["train"], labels["train"]),
                      chunk_arrays(embeddings["valid"], labels["valid"]) if splits["valid"] else None,
                      dataset.task_type, mlp=bool(config.get("finetuner_mlp", 0)),
                      max_epochs=int(config["finetuner_max_epochs"]), batch_size=int(config["finetuner_batch_size"]),
                      learning_rate=float(config["finetuner_learning_rate"]), seed=int(config["seed"]))
    predictions = track_predictions(probe, embeddings["test"])
    keep = [i for i, p in enumerate(predictions) if p is not None]
    scores = np.stack([predictions[i] for i in keep])
    targets = np.stack([labels["test"][i] for i in keep])
    if dataset.task_type == "multilabel":
        metrics = multilabel_metrics(targets, scores, dataset.class_names)
    else:
        metrics = multiclass_metrics(targets.argmax(1), scores, dataset.class_names)
    return {
        "metrics": metrics,
        "n_tracks": {s: len(t) for s, t in splits.items()},
        "predictions": {splits["test"][i].track_id: {"scores": predictions[i].round(6).tolist(),
                                                      "target": labels["test"][i].tolist()} for i in keep},
        "skipped": [{"path": p, "reason": r} for p, r in skipped.items()],
    }


def run_linear_evaluation(config: dict) -> dict:
    """Evaluate the encoder of ``--checkpoint`` on ``--dataset`` and save the results as JSON."""
    encoder, name = frozen_encoder_from_config(config)
    config = dict(config, sample_rate=encoder.sample_rate, audio_length=encoder.audio_length)
    dataset = get_dataset(config)
    result = evaluate_encoder(encoder, dataset, config, progress=config.get("progress", True))
    probe = "mlp" if config.get("finetuner_mlp") else "linear"
    result = {"dataset": config["dataset"], "task": getattr(dataset, "task", config["dataset"]),
              "task_type": dataset.task_type, "split": "test", "encoder": name, "probe": probe,
              "seed": int(config["seed"]), "class_names": dataset.class_names, **result}
    out_dir = Path(config.get("output_dir") or Path(config.get("log_dir", "runs")) / "evaluation")
    stem = f"{config['dataset']}_{result['task']}_{Path(name).stem if name != 'random' else 'random'}_{probe}"
    path = out_dir / f"{stem}.json"
    atomic_write_bytes(json.dumps(result, indent=2).encode(), path)
    result["path"] = str(path)
    return result
