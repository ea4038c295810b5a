"""``linear_evaluation.py``: probe frozen encoders (and baselines) on a labelled dataset and compare them."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from clmr_lib.cli import run_cli
from clmr_lib.config import load_config, parse_config

EXTRA = [(("--checkpoint", "--checkpoint_path"), {
    "dest": "checkpoint_path", "action": "append", "default": None, "metavar": "PATH",
    "help": "encoder to evaluate: a checkpoint (ours or original CLMR) or a baseline — random (random init), "
            "supervised (SampleCNN trained end to end), mfcc (MFCC statistics); repeat the flag or give a comma "
            "list to compare several in one table"})]


def format_result(summary: dict) -> str:
    """The comparison table, then where the results, predictions and figures are."""
    files = summary.get("files", {})
    plots = sum(len(r.get("plots", [])) for r in summary["results"]) + ("comparison_plot" in files)
    outputs = ["results.json", "table.txt", f"predictions/ ({len(summary['results'])} files)"]
    outputs += [f"plots/ ({plots} PNGs)"] if plots else []
    if "test_pred" in files:
        outputs.append(f"test_pred.json (top-3 classes of each unlabelled test file; {files['test_pred_from']})")
    return "\n".join([summary["table"], "", f"outputs in {summary['output_dir']}/: " + ", ".join(outputs)])


def evaluate(argv: Optional[Sequence[str]] = None):
    """Parse the command line, evaluate, print the table."""
    from clmr_lib.evaluation.checks import validate_evaluation
    from clmr_lib.evaluation.linear_evaluation import run_linear_evaluation

    config = parse_config(argv, "Linear evaluation of frozen encoders: probes, baselines, track-level metrics.",
                          extra=EXTRA)
    if config.get("checkpoint_path") is None:  # no flag: the value of the YAML files, if any
        config["checkpoint_path"] = load_config(config.get("config") or []).get("checkpoint_path", "")
    else:
        config["checkpoint_path"] = ",".join(config["checkpoint_path"])
    validate_evaluation(config)
    summary = run_linear_evaluation(config)
    print(format_result(summary))
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: returns the exit status (2 and a one-line message for user errors)."""
    return run_cli(evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
