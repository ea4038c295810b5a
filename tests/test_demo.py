"""Demo: the comparison table and plot, and (slow) the whole demo on a tiny synthetic set."""
import json

import pytest

from clmr_lib.demo import demo, plot_results, results_table

ROWS = [{"task": "genre", "metric": "accuracy", "clmr": 0.6, "random": 0.5},
        {"task": "tags", "metric": "roc_auc", "clmr": 0.7, "random": 0.75}]


def test_table_shows_both_encoders_and_the_signed_difference():
    lines = results_table(ROWS).splitlines()
    assert lines[0].split() == ["task", "metric", "CLMR", "random", "diff"]
    assert lines[2].split() == ["genre", "accuracy", "0.6000", "0.5000", "+0.1000"]
    assert lines[3].split()[-1] == "-0.0500"


def test_plot_is_a_png(tmp_path):
    path = tmp_path / "r.png"
    plot_results(ROWS, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_end_to_end_on_tiny_data(tmp_path):
    args = ["--dataset_dir", str(tmp_path / "data"), "--log_dir", str(tmp_path / "runs"), "--max_epochs", "1",
            "--synthetic_num_pieces", "24", "--synthetic_seconds", "3", "--finetuner_max_epochs", "5"]
    rows = demo(args)
    assert {r["task"] for r in rows} == {"tags", "genre", "artist"} and len(rows) == 6
    saved = json.loads((tmp_path / "runs" / "demo" / "demo_results.json").read_text())
    assert saved["rows"] == rows and (tmp_path / "runs" / "demo" / "demo_results.png").is_file()
