"""``linear_evaluation.py``: probe a frozen encoder on a labelled dataset and report its metrics."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from clmr_lib.cli import run_cli
from clmr_lib.config import parse_config

EXTRA = [(("--checkpoint", "--checkpoint_path"), {"dest": "checkpoint_path", "default": "",
          "help": "encoder checkpoint (ours or original CLMR), or 'random' for the random-init baseline"})]


def format_result(result: dict) -> str:
    """A short human summary of one evaluation."""
    from clmr_lib.evaluation.metrics import HEADLINE

    metrics = result["metrics"]
    values = ", ".join(f"{k} {metrics[k]:.4f}" for k in HEADLINE[result["task_type"]])
    return (f"{result['dataset']}/{result['task']} ({result['split']} split, {result['probe']} probe, "
            f"encoder {result['encoder']}): {values}\nresults: {result['path']}")


def evaluate(argv: Optional[Sequence[str]] = None):
    """Parse the command line, evaluate, print the summary."""
    from clmr_lib.evaluation.linear_evaluation import run_linear_evaluation

    config = parse_config(argv, "Linear evaluation of a frozen encoder.", extra=EXTRA)
    result = run_linear_evaluation(config)
    print(format_result(result))
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
