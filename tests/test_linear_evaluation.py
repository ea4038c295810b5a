"""Linear evaluation end to end: encoders and baselines, probes, saved predictions, table, plots, seeds."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from clmr_lib.checkpoints import atomic_save, frozen
from clmr_lib.cli.evaluate import main as evaluate_main
from clmr_lib.config import load_config
from clmr_lib.data.report import SkipReport
from clmr_lib.data.track import Track
from clmr_lib.errors import UserError
from clmr_lib.evaluation import linear_evaluation
from clmr_lib.evaluation.linear_evaluation import (evaluate_encoder, probe_names, encoder_names,
                                                   run_linear_evaluation)
from clmr_lib.models.sample_cnn import SampleCNN

TINY = {"sample_rate": 16000, "audio_length": 729, "sample_cnn_channels": [8, 8, 8, 8, 8, 8, 16],
        "sample_cnn_strides": [3, 3, 3, 3, 3], "workers": 0, "progress": False, "finetuner_max_epochs": 30,
        "finetuner_learning_rate": 0.01, "supervised_max_epochs": 3, "supervised_batch_size": 8, "plots": False}


@pytest.fixture
def low_high(tmp_path, make_audio_file):
    """Two 'genres' told apart by pitch (low: 150-250 Hz, high: 1.5-2.5 kHz), and a 'bright' tag."""
    root = tmp_path / "lowhigh"
    rows = ["path,split,genre,tags"]
    rng = np.random.default_rng(0)
    for i in range(36):
        genre = ["low", "high"][i % 2]
        freq = (150 if genre == "low" else 1500) + rng.uniform(0, 1000 if genre == "high" else 100)
        split = ["train", "train", "train", "train", "valid", "test"][i % 6] if i < 30 else "test"
        make_audio_file(root / f"{i:02d}.wav", seconds=0.25, sample_rate=16000, frequency=freq, noise=0.01)
        tags = "bright;tone" if genre == "high" else ("tone;warm" if i % 4 == 0 else "tone")
        rows.append(f"{i:02d}.wav,{split},{genre},{tags}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    config = load_config()
    config.update(TINY, dataset="folder", dataset_dir=str(root), output_dir=str(tmp_path / "eval"),
                  log_dir=str(tmp_path / "runs"), checkpoint_path="random", task="genre")
    return config


def _saved(summary):
    return json.loads(Path(summary["path"]).read_text())


def test_encoders_and_probes_compared_in_one_run_with_recomputable_predictions(low_high):
    summary = run_linear_evaluation(dict(low_high, checkpoint_path="random,mfcc,supervised",
                                         probes="linear,knn", plots=True))
    saved, out = _saved(summary), Path(summary["output_dir"])
    pairs = [(r["encoder"], r["probe"]) for r in saved["results"]]
    assert pairs == [(e, p) for e in ("random", "mfcc", "supervised") for p in ("linear", "knn")] \
        + [("supervised", "end-to-end")]
    assert {r["encoder"] for r in saved["retrieval"]} == {"random", "mfcc", "supervised"}
    for record in saved["results"] + saved["retrieval"]:
        assert {"dataset", "task", "split", "encoder", "probe", "seed", "metrics"} <= set(record)
        assert record["split"] == "test" and record["seed"] == 42 and record["dataset"] == "folder"
    mfcc_linear = next(r for r in saved["results"] if r["encoder"] == "mfcc" and r["probe"] == "linear")
    assert mfcc_linear["metrics"]["accuracy"] >= 0.9 and mfcc_linear["n_tracks"] == 11
    # Anyone can recompute the metrics from the saved per-track predictions.
    for record in saved["results"]:
        predictions = json.loads((out / record["predictions"]).read_text())["splits"]["test"]
        scores = np.array([p["scores"] for p in predictions])
        targets = np.array([p["target"] for p in predictions]).argmax(1)
        assert len(predictions) == 11
        assert np.mean(scores.argmax(1) == targets) == pytest.approx(record["metrics"]["accuracy"])
    assert "supervised" in summary["table"] and "end-to-end" in summary["table"] and "R@8" in summary["table"]
    assert (out / "table.txt").read_text().strip() == summary["table"].strip()
    for name in ("comparison.png", "confusion_mfcc__linear.png", "curves_random__linear.png",
                 "curves_supervised__end-to-end.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_multilabel_task_per_tag_metrics_and_mlp_probe(low_high):
    summary = run_linear_evaluation(dict(low_high, task="tags", checkpoint_path="mfcc", finetuner_mlp=1, plots=True))
    record = summary["results"][0]
    assert record["probe"] == "mlp" and record["metrics"]["undefined_tags"] == ["tone"]
    assert record["metrics"]["per_tag"]["bright"]["roc_auc"] >= 0.9
    out = Path(summary["output_dir"])
    predictions = json.loads((out / record["predictions"]).read_text())
    tracks = predictions["splits"]["test"]
    column = predictions["class_names"].index("warm")
    y = [t["target"][column] for t in tracks]
    s = [t["scores"][column] for t in tracks]
    assert roc_auc_score(y, s) == pytest.approx(record["metrics"]["per_tag"]["warm"]["roc_auc"], abs=1e-5)
    assert average_precision_score(y, s) == pytest.approx(record["metrics"]["per_tag"]["warm"]["pr_auc"], abs=1e-5)
    assert (out / "plots" / "per_tag_mfcc__mlp.png").is_file()


def test_same_seed_gives_the_same_numbers(low_high, tmp_path):
    config = dict(low_high, probes="linear,knn", embedding_cache_dir="none")
    a = run_linear_evaluation(dict(config, output_dir=str(tmp_path / "a")))
    b = run_linear_evaluation(dict(config, output_dir=str(tmp_path / "b")))
    assert [r["metrics"] for r in a["results"]] == [r["metrics"] for r in b["results"]]
    for record in a["results"]:
        assert (Path(a["output_dir"]) / record["predictions"]).read_text() == \
               (Path(b["output_dir"]) / record["predictions"]).read_text()


def test_evaluation_leaves_the_encoder_bit_identical(low_high):
    from clmr_lib.data import get_dataset

    torch.manual_seed(0)
    encoder = frozen(SampleCNN(TINY["sample_cnn_channels"], TINY["sample_cnn_strides"], sample_rate=16000,
                               audio_length=729))
    before = copy.deepcopy(encoder.state_dict())
    result = evaluate_encoder(encoder, get_dataset(low_high), low_high, progress=False, probes=["linear", "mlp"])
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    # What the demo stores: everything but the predictions is plain JSON.
    json.dumps({k: v for k, v in result.items() if k != "predictions"})
    assert set(result["metrics"]) >= {"accuracy", "top3_accuracy"}


def test_baselines_take_the_layout_of_the_checkpoint_they_are_compared_with(low_high, tmp_path):
    torch.manual_seed(1)
    kwargs = {"channels": [8, 8, 8, 8, 16], "strides": [3, 3, 3], "sample_rate": 8000, "audio_length": 243}
    encoder = SampleCNN(**kwargs)
    checkpoint = tmp_path / "tiny.ckpt"
    atomic_save({"state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
                 "hyper_parameters": {"encoder_kwargs": kwargs}}, checkpoint)
    summary = run_linear_evaluation(dict(low_high, checkpoint_path=f"{checkpoint},random"))
    saved = _saved(summary)
    assert saved["settings"]["baseline_layout"]["sample_cnn_channels"] == [8, 8, 8, 8, 16]
    assert saved["settings"]["sample_rate"] == 8000 and saved["settings"]["chunk_length"] == 243
    assert [r["encoder"] for r in saved["results"]] == [str(checkpoint), "random"]


class _CourseLayout:
    """artist20's course layout in miniature: labelled train/valid, unlabelled test files."""

    task, task_type, class_names = "artist", "multiclass", ["ann", "bob", "cat", "dan"]

    def __init__(self, folder, make_audio_file):
        self.skipped = SkipReport()
        self._tracks = {"train": [], "valid": [], "test": []}
        for i in range(32):
            split = "test" if i >= 24 else ("valid" if i % 6 == 0 else "train")
            path = make_audio_file(folder / f"{i:02d}.wav", seconds=0.1, sample_rate=16000,
                                   frequency=200 * (1 + i % 4), noise=0.01)
            self._tracks[split].append(Track(path, f"{i:04d}", label=None if split == "test" else i % 4))

    def tracks(self, split):
        return list(self._tracks[split])


def test_unlabelled_test_split_gets_top3_predictions_and_metrics_on_validation(low_high, tmp_path, make_audio_file,
                                                                               monkeypatch):
    dataset = _CourseLayout(tmp_path / "course", make_audio_file)
    monkeypatch.setattr(linear_evaluation, "get_dataset", lambda config: dataset)
    seen, fit = [], linear_evaluation._fit

    def recording_fit(name, embeddings, labels, *args):
        seen.append((len(embeddings["train"]), len(embeddings["valid"]), len(labels["valid"])))
        return fit(name, embeddings, labels, *args)

    monkeypatch.setattr(linear_evaluation, "_fit", recording_fit)
    summary = run_linear_evaluation(dict(low_high, checkpoint_path="mfcc", probes="linear,knn"))
    # The 4 validation tracks report the metrics, so probes are selected on 2 of the 20 training
    # tracks held out (10%) and trained on the other 18, never on the reporting tracks.
    assert seen == [(18, 2, 2), (18, 2, 2)]
    assert "held out" in summary["table"]
    out = Path(summary["output_dir"])
    test_pred = json.loads((out / "test_pred.json").read_text())
    assert sorted(test_pred) == [f"{i:04d}" for i in range(24, 32)]
    assert all(len(v) == 3 and len(set(v)) == 3 and set(v) <= set(dataset.class_names) for v in test_pred.values())
    assert all(r["split"] == "valid" for r in summary["results"])
    assert "validation split" in summary["table"]
    saved = json.loads((out / summary["results"][0]["predictions"]).read_text())["splits"]
    assert all(p["target"] is None for p in saved["test"]) and len(saved["valid"]) == 4


class _LayeredEncoder(torch.nn.Module):
    """Three 'layers' of features; only the last separates low from high tones."""

    sample_rate, audio_length, embedding_dim = 16000, 729, 4

    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs()
        high = spectrum[:, 40:].mean(1, keepdim=True) / (spectrum.mean(1, keepdim=True) + 1e-8)
        noise = torch.randn(len(x), 2, 4, generator=torch.Generator().manual_seed(len(x)))
        return torch.cat([noise, high.repeat(1, 4)[:, None]], dim=1)  # (batch, 3 layers, 4)


def test_multilayer_embeddings_get_a_learned_layer_weighting(low_high):
    from clmr_lib.data import get_dataset

    result = evaluate_encoder(_LayeredEncoder(), get_dataset(low_high), low_high, progress=False,
                              probes=["linear", "logreg"])
    weights = result["runs"][0]["details"]["layer_weights"]
    assert len(weights) == 3 and np.argmax(weights) == 2
    assert result["runs"][0]["metrics"]["accuracy"] >= 0.9


def test_probe_and_encoder_lists():
    assert probe_names({"probes": "all"}) == ["linear", "mlp", "logreg", "knn", "svm", "rf"]
    assert probe_names({"probes": "linear", "finetuner_mlp": 1}) == ["mlp"]
    assert probe_names({"probes": ["svm", " knn", "svm"]}) == ["svm", "knn"]
    with pytest.raises(UserError, match="--probes"):
        probe_names({"probes": "linear,xgboost"})
    assert encoder_names({"checkpoint_path": "a.ckpt, random", "supervised": 1}) == ["a.ckpt", "random", "supervised"]


def test_cli_compares_repeated_checkpoints_and_prints_the_table(low_high, capsys):
    args = ["--dataset", "folder", "--dataset_dir", low_high["dataset_dir"], "--task", "genre",
            "--checkpoint", "random", "--checkpoint_path", "mfcc", "--log_dir", low_high["log_dir"],
            "--output_dir", low_high["output_dir"], "--finetuner_max_epochs", "5", "--progress", "false",
            "--plots", "false"]
    for key in ("sample_rate", "audio_length", "sample_cnn_channels", "sample_cnn_strides"):
        args += [f"--{key}", json.dumps(TINY[key])]
    assert evaluate_main(args) == 0
    printed = capsys.readouterr().out
    assert "random" in printed and "mfcc" in printed and "results.json" in printed and "plots/" not in printed


def test_cli_errors_name_the_flag(capsys):
    assert evaluate_main(["--dataset", "folder"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", "random", "--probes", "boosting"]) == 2
    assert "--probes" in capsys.readouterr().err


def test_a_dataset_without_validation_split_gets_one_held_out_of_train(low_high):
    from clmr_lib.data import get_dataset
    from clmr_lib.evaluation.splits import HeldOutValidation, with_validation

    metadata = Path(low_high["dataset_dir"]) / "metadata.csv"
    metadata.write_text(metadata.read_text().replace(",valid,", ",train,"))
    dataset = get_dataset(low_high)
    view = with_validation(dataset, seed=0)
    assert isinstance(view, HeldOutValidation) and len(view.tracks("valid")) == 2
    assert len(view.tracks("train")) + 2 == len(dataset.tracks("train"))
    assert not {t.path for t in view.tracks("train")} & {t.path for t in view.tracks("valid")}
    summary = run_linear_evaluation(dict(low_high, checkpoint_path="mfcc"))
    assert "held out" in summary["table"] and "held out" in _saved(summary)["settings"]["validation"]


def test_cli_reads_the_checkpoint_from_a_config_file(low_high, tmp_path, capsys):
    config_file = tmp_path / "eval.yaml"
    config_file.write_text("checkpoint_path: bogus.ckpt\n")
    assert evaluate_main(["--config", str(config_file), "--dataset", "folder"]) == 2
    assert "bogus.ckpt" in capsys.readouterr().err


@pytest.mark.slow
def test_full_comparison_on_generated_synthetic_music_twice(tmp_path, capsys):
    """As a user would: every baseline and probe on the synthetic data; the rerun reuses every cache."""
    args = ["--dataset", "synthetic", "--dataset_dir", str(tmp_path / "data"), "--synthetic_num_pieces", "36",
            "--synthetic_seconds", "3", "--log_dir", str(tmp_path / "runs"), "--checkpoint", "random,supervised,mfcc",
            "--probes", "all", "--task", "tags", "--finetuner_max_epochs", "20", "--supervised_max_epochs", "2",
            "--progress", "false"]
    for key in ("sample_rate", "audio_length", "sample_cnn_channels", "sample_cnn_strides"):
        args += [f"--{key}", json.dumps(TINY[key])]
    assert evaluate_main(args) == 0
    first = capsys.readouterr().out
    cache = sorted(p.name for p in (tmp_path / "runs" / "embeddings").rglob("*"))
    assert evaluate_main(args) == 0
    assert capsys.readouterr().out == first
    assert sorted(p.name for p in (tmp_path / "runs" / "embeddings").rglob("*")) == cache
    saved = json.loads((tmp_path / "runs" / "evaluation" / "synthetic_tags" / "results.json").read_text())
    assert len(saved["results"]) == 3 * 6 + 1 and {r["split"] for r in saved["results"]} == {"test"}


def test_artist20_course_layout_end_to_end_writes_test_pred_json(low_high, tmp_path):
    from fixtures.fake_datasets import ARTISTS, make_artist20_course

    fake = make_artist20_course(tmp_path / "data")
    summary = run_linear_evaluation(dict(low_high, dataset="artist20", dataset_dir=fake.dataset_dir, task="",
                                         checkpoint_path="mfcc", probes="linear,knn"))
    test_pred = json.loads((Path(summary["output_dir"]) / "test_pred.json").read_text())
    assert sorted(test_pred) == fake.test_ids  # the undecodable 003.mp3 is skipped and reported
    assert all(sorted(names) == sorted(ARTISTS) for names in test_pred.values())  # top-3 of 2 artists: both
    saved = _saved(summary)
    assert saved["split"] == "valid" and any("003.mp3" in s["path"] for s in saved["skipped"])


@pytest.mark.parametrize("names, precision, warns", [(["random"], "bf16-mixed", True), (["a.ckpt", "random"], "bf16-true", True),
                                                      (["random"], "32-true", False), (["a.ckpt"], "bf16-mixed", False)])
def test_a_random_baseline_embedded_in_bf16_is_flagged(names, precision, warns, recwarn):
    assert linear_evaluation.warn_reduced_precision_baseline(names, {"precision": precision}) is warns
    assert any("random" in str(w.message) and "32-true" in str(w.message) for w in recwarn.list) is warns
