"""``preprocess.py``: convert a standard dataset once to the training format (and download it)."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from clmr_lib.cli import run_cli
from clmr_lib.config import parse_config

EXTRA = [(("--download",), {"action": "store_true",
                            "help": "first download the dataset (MagnaTagATune, GTZAN, FMA), verifying checksums"})]


def preprocess(argv: Optional[Sequence[str]] = None):
    """Parse the command line, preprocess, print the report."""
    from clmr_lib.preprocessing.pipeline import run_preprocessing

    config = parse_config(argv, "Convert a dataset to mono WAV at --sample_rate for fast training (resumable); "
                                "--workers N processes (0: one per CPU).", extra=EXTRA)
    try:
        report = run_preprocessing(config)
    except KeyboardInterrupt:
        print("interrupted: the files converted so far are kept; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    print(report.summary())
    print(f"report: {report.output}/report.json")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: returns the exit status (2 and a one-line message for user errors)."""
    return run_cli(preprocess, argv)


if __name__ == "__main__":
    sys.exit(main())
