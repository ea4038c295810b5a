"""Linear evaluation end to end: frozen encoder, chunk embeddings, probe, track-level test metrics."""
import json

import numpy as np
import pytest
import torch

from clmr_lib.cli.evaluate import main as evaluate_main
from clmr_lib.config import load_config
from clmr_lib.evaluation.linear_evaluation import run_linear_evaluation
from clmr_lib.evaluation.probe import fit_probe

TINY = {"sample_rate": 16000, "audio_length": 729, "sample_cnn_channels": [8, 8, 8, 8, 8, 8, 16],
        "sample_cnn_strides": [3, 3, 3, 3, 3], "workers": 0, "progress": False, "finetuner_max_epochs": 200, "finetuner_learning_rate": 0.01}


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
        rows.append(f"{i:02d}.wav,{split},{genre},{'bright;tone' if genre == 'high' else 'tone'}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    config = load_config()
    config.update(TINY, dataset="folder", dataset_dir=str(root), output_dir=str(tmp_path / "eval"),
                  checkpoint_path="random", task="genre")
    return config


def test_random_encoder_probe_separates_an_easy_task(low_high, tmp_path):
    result = run_linear_evaluation(dict(low_high))
    assert result["task_type"] == "multiclass" and result["n_tracks"]["test"] == 11
    assert result["metrics"]["accuracy"] >= 0.9
    saved = json.loads(open(result["path"]).read())
    assert saved["encoder"] == "random" and saved["probe"] == "linear" and saved["split"] == "test"
    # The saved predictions recompute the saved accuracy.
    predictions = saved["predictions"]
    accuracy = np.mean([np.argmax(p["scores"]) == np.argmax(p["target"]) for p in predictions.values()])
    assert accuracy == pytest.approx(saved["metrics"]["accuracy"])


def test_multilabel_task_and_mlp_probe(low_high):
    result = run_linear_evaluation(dict(low_high, task="tags", finetuner_mlp=1))
    assert result["probe"] == "mlp" and result["metrics"]["undefined_tags"] == ["tone"]
    assert result["metrics"]["per_tag"]["bright"]["roc_auc"] >= 0.9


def test_probe_training_is_reproducible():
    x = torch.randn(64, 8)
    y = torch.nn.functional.one_hot((x[:, 0] > 0).long(), 2).float()
    a = fit_probe((x, y), (x, y), "multiclass", max_epochs=3, seed=1)
    b = fit_probe((x, y), (x, y), "multiclass", max_epochs=3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_cli_needs_a_checkpoint(capsys):
    assert evaluate_main(["--dataset", "folder"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
