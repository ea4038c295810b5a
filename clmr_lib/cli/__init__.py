"""Command-line entry points: parse the config, call the library, turn user errors into one line."""
from __future__ import annotations

import os
import sys
import warnings
from typing import Callable, Optional, Sequence

from clmr_lib.errors import UserError


def _process_tag() -> str:
    """`` (process N on node M)`` for the extra processes of a multi-process run, else empty."""
    from clmr_lib.utils.dist import is_main_process

    if is_main_process():
        return ""
    env = os.environ
    rank = env.get("RANK") or env.get("LOCAL_RANK") or env.get("SLURM_PROCID") or "?"
    node = env.get("NODE_RANK") or env.get("SLURM_NODEID") or env.get("GROUP_RANK")
    return f" (process {rank}" + (f" on node {node})" if node else ")")


_default_format = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Our own warnings as one ``warning: ...`` line; everyone else's in Python's usual format."""
    if os.sep + "clmr_lib" + os.sep in str(filename) and issubclass(category, UserWarning):
        return f"warning: {' '.join(str(message).split())}\n"
    return _default_format(message, category, filename, lineno, line)


def run_cli(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` prints ``error: ...`` and returns 2 (``--debug``: traceback).

    Every process of a multi-process run prints its own errors (on another node the message may
    be the only sign of, say, a folder missing there); those other than the main one say which
    process they are.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    previous_format, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        main(argv)
    except UserError as exc:
        if "--debug" in argv:
            raise
        message = " ".join(str(exc).split())
        print(f"error{_process_tag()}: {message}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        # argparse's one-line errors (status 2) and --help (0): returned like ours, to in-process callers too.
        if type(exc) is SystemExit and isinstance(exc.code, int):
            return exc.code
        raise
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous_format
    return 0
