"""Linear evaluation of a frozen encoder. See README.md; every config/config.yaml key is a --flag."""
import sys

from clmr_lib.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
