"""Command-line entry points: parse the config, call the library, turn user errors into one line."""
from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from clmr_lib.errors import UserError


def run_cli(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` prints ``error: ...`` and returns 2 (``--debug``: traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        main(argv)
    except UserError as exc:
        if "--debug" in argv:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130
    return 0
