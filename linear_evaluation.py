"""Linear evaluation of frozen encoders and baselines in one table; see README.md. Every config key is a --flag."""
import sys

from clmr_lib.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
