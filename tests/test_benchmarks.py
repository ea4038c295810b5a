"""The benchmarks' shared helpers and the bf16 loss-curve verdict, on literal inputs (nothing is timed)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _common  # noqa: E402
import bf16_loss_curve  # noqa: E402


def test_repeat_interleaved_rotates_the_order_and_warms_up():
    calls = []
    cases = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = _common.repeat_interleaved(cases, repeats=3, warmup=1)
    assert calls == list("abc" "abc" "bca" "cab")
    assert {name: len(values) for name, values in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_spread_rates_and_ratios():
    assert _common.spread([3.0, 1.0, 2.0]) == "2.00 [1.00-3.00]"
    assert _common.spread([0.002, 0.001], digits=1, scale=1e3) == "1.5 [1.0-2.0]"
    assert _common.rates([2.0, 4.0], 8) == [4.0, 2.0]
    assert _common.ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]
    assert _common.summary([1.0, 3.0], scale=2)["median"] == 4.0


def test_quick_replaces_only_defaults():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reads", type=int, default=10)
    _common.add_common_arguments(parser)
    args = _common.parse_args(parser, {"seconds": 4.0, "reads": 2, "repeats": 2}, ["--quick", "--reads", "7"])
    assert (args.seconds, args.reads, args.repeats) == (4.0, 7, 2)
    assert _common.parse_args(parser, {"seconds": 4.0}, []).seconds == 30.0


def test_write_json_records_machine_settings_and_results(tmp_path):
    path = tmp_path / "out" / "figures.json"
    _common.write_json(str(path), argparse.Namespace(repeats=5), {"x": 1.5})
    payload = json.loads(path.read_text())
    assert payload["results"] == {"x": 1.5} and payload["settings"] == {"repeats": 5}
    assert {"cpu", "cores", "torch", "threads", "date"} <= set(payload["machine"])


def runs_of(**curves) -> dict:
    return {name: {"loss": np.asarray(loss, dtype=float)} for name, loss in curves.items()}


FALLING = np.linspace(4.0, 3.0, 40)


@pytest.mark.parametrize("offset, passed", [(0.05, True), (0.3, False)])
def test_bf16_verdict_against_the_seed_control(offset, passed):
    # Control gap 0.1 -> limit 0.15: a bf16 curve 0.05 away passes, 0.3 away fails.
    runs = runs_of(fp32=FALLING, bf16=FALLING + offset, control=FALLING + 0.1)
    figures = bf16_loss_curve.compare(runs, window=5, warmup=8, factor=1.5, tolerance=0.1)
    assert figures["limit"] == pytest.approx(0.15)
    assert figures["bf16_gap"] == pytest.approx(offset)
    assert figures["passed"] is passed


def test_flat_curves_do_not_pass_by_tracking_each_other():
    flat = np.full(40, 4.0)
    figures = bf16_loss_curve.compare(runs_of(fp32=flat, bf16=flat), window=5, warmup=8, factor=1.5, tolerance=0.1)
    assert figures["bf16_gap"] == 0.0
    assert not figures["passed"]
    assert figures["limit_rule"] == "--tolerance"


def test_gaps_before_warmup_are_not_compared():
    bf16 = FALLING.copy()
    bf16[:5] += 1.0  # a different start, forgotten by step 5 + window
    figures = bf16_loss_curve.compare(runs_of(fp32=FALLING, bf16=bf16), window=5, warmup=10, factor=1.5,
                                      tolerance=0.1)
    assert figures["bf16_gap"] == pytest.approx(0.0)
    assert figures["passed"]
