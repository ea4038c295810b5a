"""Atomic file writes: a temporary file in the same folder, then a rename, so no reader sees half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clmr_lib.errors import UserError


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    An interruption at any moment leaves either the previous file or the new one, never a
    truncated file; the temporary file is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def ensure_writable(folder: Path, flag: str = "--log_dir") -> None:
    """Create ``folder`` and check that files can be written in it (a probe file, written and removed).

    Raises:
        UserError: It cannot be created or written to; the message names ``flag``.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write_test.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {folder} ({exc.strerror or exc}); choose a writable {flag}") from exc
