"""Evaluation figures: every plot writes a PNG, atomically, for typical and edge-case inputs."""
import pytest

from clmr_lib.evaluation.plots import (plot_comparison, plot_confusion_matrix, plot_per_tag_auc,
                                       plot_training_curves)

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.read_bytes()[:8] == PNG and not list(path.parent.glob("*.tmp"))


def test_confusion_matrix(tmp_path):
    path = plot_confusion_matrix([[5, 1, 0], [0, 3, 2], [0, 0, 0]], ["rock", "jazz", "folk"], tmp_path / "c.png", "t")
    assert _is_png(path)


def test_per_tag_auc(tmp_path):
    per_tag = {"drums": {"roc_auc": 0.9, "pr_auc": 0.7}, "vocal": {"roc_auc": 0.6, "pr_auc": 0.3}}
    assert _is_png(plot_per_tag_auc(per_tag, tmp_path / "plots" / "t.png"))


@pytest.mark.parametrize("with_valid", [True, False])
def test_training_curves(tmp_path, with_valid):
    epochs = [{"epoch": i, "train_loss": 1 / (i + 1), **({"valid_loss": 1.2 / (i + 1)} if with_valid else {})}
              for i in range(5)]
    history = {"epochs": epochs, "best_epoch": 4 if with_valid else None}
    assert _is_png(plot_training_curves({"linear": history, "mlp": history}, tmp_path / "h.png"))


def test_comparison_with_a_missing_combination(tmp_path):
    rows = [{"encoder": "clmr", "probe": "linear", "metrics": {"accuracy": 0.7}},
            {"encoder": "random", "probe": "linear", "metrics": {"accuracy": 0.5}},
            {"encoder": "supervised", "probe": "end-to-end", "metrics": {"accuracy": 0.8}}]
    assert _is_png(plot_comparison(rows, "accuracy", tmp_path / "cmp.png"))
