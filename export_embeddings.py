"""Export embeddings of a folder of audio (one .npy per track plus an index). See README.md."""
import sys

from clmr_lib.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
