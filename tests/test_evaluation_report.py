"""Evaluation outputs: the comparison table, file-name slugs, prediction records, test_pred.json."""
import json

import numpy as np

from clmr_lib.data.track import Track
from clmr_lib.evaluation.report import prediction_records, results_table, short_name, slug, write_test_pred

RESULTS = [{"encoder": "runs/demo/checkpoints/last.ckpt", "probe": "linear", "task_type": "multiclass",
            "metrics": {"accuracy": 0.6125, "top3_accuracy": 0.975, "macro_f1": 0.6}},
           {"encoder": "random", "probe": "knn", "task_type": "multiclass",
            "metrics": {"accuracy": 0.5, "top3_accuracy": float("nan"), "macro_f1": 0.45}}]
RETRIEVAL = [{"encoder": "random", "metrics": {"recall@1": 0.3, "recall@8": 0.9, "queries": 10}}]


def test_table_has_a_line_per_encoder_and_probe_and_a_retrieval_block():
    lines = results_table(RESULTS, RETRIEVAL, "title").splitlines()
    assert lines[0] == "title" and lines[1].split() == ["encoder", "probe", "acc", "top3-acc", "macro-F1"]
    assert lines[3].split() == ["runs/demo/checkpoints/last.ckpt", "linear", "0.6125", "0.9750", "0.6000"]
    assert lines[4].split() == ["random", "knn", "0.5000", "-", "0.4500"]
    assert lines[6].split() == ["encoder", "retrieval", "R@1", "R@8"]
    assert lines[8].split() == ["random", "cosine", "0.3000", "0.9000"]


def test_names_for_files_and_columns():
    assert slug("runs/demo/checkpoints/last.ckpt") == "runs_demo_checkpoints_last.ckpt"
    assert slug("../x y") == "x_y"
    assert short_name("a" * 40, 10) == "…" + "a" * 9


def test_prediction_records_skip_unreadable_tracks_and_keep_unlabelled_ones(tmp_path):
    tracks = [Track("/a.wav", "a", 0), Track("/b.wav", "b", None), Track("/c.wav", "c", 1)]
    scores = [np.array([0.9, 0.1]), np.array([1 / 3 + 1e-9, 2 / 3 - 1e-9]), None]
    records = prediction_records(tracks, scores, [np.array([1.0, 0.0]), None, np.array([0.0, 1.0])])
    assert [r["track_id"] for r in records] == ["a", "b"] and records[1]["target"] is None
    assert json.loads(json.dumps(records))[1]["scores"] == scores[1].tolist()  # full precision: no new ties
    path = write_test_pred([{"track_id": "b", "scores": [0.1, 0.5, 0.3, 0.1]}], ["w", "x", "y", "z"],
                           tmp_path / "test_pred.json")
    assert json.loads(path.read_text()) == {"b": ["x", "y", "w"]}
