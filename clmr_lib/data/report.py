"""SkipReport: the files a run skipped or failed to read, with a reason each, listed at the end."""
from __future__ import annotations

import json
import os
import threading
from typing import Iterable, Iterator, Tuple, Union

from clmr_lib.utils.atomic import atomic_write_bytes


class SkipReport:
    """Skipped or unreadable files, each with one reason, in the order they were first added.

    A path is listed once: adding it again keeps its first reason (the earliest failure is the
    informative one; later ones are usually consequences). Adding is guarded by a lock, so
    scanning threads may share one report; DataLoader worker processes cannot share it and
    should send their failures back to the main process instead.

    Example:
        >>> report = SkipReport()
        >>> report.add("/data/a.mp3", "not a recognised audio format or corrupt data")
        >>> print(report.summary())
        1 audio file skipped:
          /data/a.mp3: not a recognised audio format or corrupt data
    """

    def __init__(self, items: Iterable[Tuple[str, str]] = ()):
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}
        self.extend(items)

    def add(self, path: str, reason: str) -> None:
        """List ``path`` with ``reason`` (one line); a path already listed keeps its first reason."""
        path = os.fspath(path)
        reason = " ".join(str(reason).split()) or "unknown reason"
        with self._lock:
            self._reasons.setdefault(path, reason)

    def extend(self, items: Union["SkipReport", Iterable[Tuple[str, str]]]) -> None:
        """Add several ``(path, reason)`` pairs, or every entry of another report."""
        for path, reason in list(items):
            self.add(path, reason)

    def merge(self, other: "SkipReport") -> "SkipReport":
        """Add every entry of ``other`` to this report (in place) and return this report."""
        self.extend(other)
        return self

    def items(self) -> list[Tuple[str, str]]:
        """All ``(path, reason)`` pairs in the order they were added."""
        with self._lock:
            return list(self._reasons.items())

    def reason(self, path: str) -> str:
        """The reason ``path`` was skipped (KeyError if it was not)."""
        with self._lock:
            return self._reasons[os.fspath(path)]

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._reasons)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.fspath(path) in self._reasons

    def __bool__(self) -> bool:
        return bool(self._reasons)

    def __repr__(self) -> str:
        return f"SkipReport({len(self)} files)"

    def summary(self, limit: int = 10) -> str:
        """Human-readable lines: how many files were skipped, then the first ``limit`` with reasons.

        Args:
            limit: How many files to list; the rest are counted.

        Returns:
            Several lines of text without a trailing newline.
        """
        items = self.items()
        if not items:
            return "No audio files skipped."
        lines = [f"{len(items)} audio file{'s' if len(items) != 1 else ''} skipped:"]
        lines += [f"  {path}: {reason}" for path, reason in items[:max(limit, 0)]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - max(limit, 0)} more")
        return "\n".join(lines)

    def to_json(self, path: str) -> None:
        """Write the report as JSON (``{"count": n, "skipped": [{"path", "reason"}, ...]}``) atomically."""
        path = os.fspath(path)
        items = self.items()
        payload = {"count": len(items), "skipped": [{"path": p, "reason": r} for p, r in items]}
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        atomic_write_bytes(text.encode("utf-8"), path)

    @classmethod
    def from_json(cls, path: str) -> "SkipReport":
        """Read a report written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
        return cls((entry["path"], entry["reason"]) for entry in payload.get("skipped", []))

    def __getstate__(self) -> dict:
        # A lock cannot be pickled; datasets holding a report are pickled into worker processes.
        return {"reasons": self.items()}

    def __setstate__(self, state: dict) -> None:
        self._lock = threading.Lock()
        self._reasons = dict(state["reasons"])
