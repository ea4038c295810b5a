"""Contrastive pretraining (CLMR). See README.md; every config/config.yaml key is a --flag."""
import sys

from clmr_lib.cli.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
