"""``pretrain.py``: contrastive pretraining (CLMR) configured by config/config.yaml and flags."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from clmr_lib.cli import run_cli
from clmr_lib.config import parse_config

EXTRA = [(("--resume",), {"action": "store_true",
                          "help": "continue the run from its newest readable checkpoint (starts it if it has none)"})]


def pretrain(argv: Optional[Sequence[str]] = None):
    """Parse the command line and pretrain; prints where the checkpoint is."""
    from clmr_lib.training.pretrain import run_pretraining
    from clmr_lib.utils.dist import is_main_process

    config = parse_config(argv, "Contrastive pretraining of an audio encoder (CLMR).", extra=EXTRA)
    path = run_pretraining(config)
    if is_main_process():
        print(f"checkpoint: {path}")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(pretrain, argv)


if __name__ == "__main__":
    sys.exit(main())
