"""Preprocess a standard dataset (convert once; resumable). See README.md; every config key is a --flag."""
import sys

from clmr_lib.cli.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
