"""PreprocessReport: what a preprocessing run converted, skipped and failed, and how much audio it holds."""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

from clmr_lib.checkpoints import atomic_write_bytes


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _kind(reason: str) -> str:
    """A coarse class of a failure reason, for the summary's counts."""
    text = reason.lower()
    for kind, words in (("missing", ("missing", "not found")), ("empty", ("empty", "0 frames", "no audio")),
                        ("truncated", ("truncated",)), ("undecodable", ("recognised", "decode", "corrupt"))):
        if any(word in text for word in words):
            return kind
    return "other"


@dataclass
class PreprocessReport:
    """The outcome of converting one dataset.

    Args:
        dataset: Registry name.
        root: Dataset folder.
        output: Folder of the converted files (``<root>/processed/<sample_rate>``).
        sample_rate: Their sample rate.
        format: Their format (``"wav"`` or ``"flac"``).
        listed: Distinct files the dataset lists.
        converted: Files converted by this run.
        skipped: Files already converted by an earlier run (left untouched).
        failed: ``{"path", "reason", "splits"}`` per file that could not be converted; each is left
            out of every split listed in ``splits``.
        audio_seconds: Total length of all converted files (this run's and earlier ones').
        converted_seconds: Length of the files this run converted.
        elapsed: Wall-clock seconds of the run.
        workers: Worker processes used.
        interrupted: The run stopped early; rerunning the command resumes it.
        excluded: ``{"path", "reason"}`` per entry the metadata itself rules out (no label, no
            audio path, an unknown split): never converted, left out of the dataset too.
    """

    dataset: str
    root: str
    output: str
    sample_rate: int
    format: str
    listed: int = 0
    converted: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    audio_seconds: float = 0.0
    converted_seconds: float = 0.0
    elapsed: float = 0.0
    workers: int = 1
    interrupted: bool = False
    excluded: list = field(default_factory=list)

    @property
    def hours(self) -> float:
        """Hours of audio in the converted files."""
        return self.audio_seconds / 3600.0

    @property
    def hours_per_minute(self) -> float:
        """Throughput of this run: hours of audio converted per minute of wall-clock time."""
        return (self.converted_seconds / 3600.0) / (self.elapsed / 60.0) if self.elapsed > 0 else 0.0

    def _amount(self) -> str:
        return f"{self.hours:.2f} hours" if self.hours >= 1 else f"{self.audio_seconds / 60:.1f} minutes of audio"

    def summary(self, limit: int = 20) -> str:
        """Human-readable lines for the end of a run (no trailing newline).

        Args:
            limit: How many failed files to list; the rest are counted.
        """
        state = "INTERRUPTED — rerun the same command to resume" if self.interrupted else "done"
        lines = [f"preprocess {self.dataset}: {state}",
                 f"  output     {self.output} ({self.format.upper()}, 16-bit, {self.sample_rate} Hz mono)",
                 f"  listed     {self.listed} files",
                 f"  converted  {self.converted}",
                 f"  skipped    {self.skipped} (converted by an earlier run)",
                 f"  failed     {len(self.failed)}"
                 + (" (left out of every split that lists them)" if self.failed else ""),
                 *([f"  excluded   {len(self.excluded)} entries the metadata itself rules out (e.g. "
                    f"{self.excluded[0]['reason']}; each in report.json)"] if self.excluded else []),
                 f"  audio      {self._amount()} in {self.converted + self.skipped} converted files",
                 f"  time       {_duration(self.elapsed)} with {self.workers} worker{'s' if self.workers != 1 else ''}"
                 + (f" ({self.hours_per_minute:.2f} hours of audio per minute)" if self.converted else "")]
        if self.failed:
            kinds = Counter(_kind(item["reason"]) for item in self.failed)
            lines.append("failed files (" + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) + "):")
            # Missing files are usually a partial copy and all alike: list the other failures first.
            ordered = sorted(self.failed, key=lambda item: _kind(item["reason"]) == "missing")
            for item in ordered[:max(limit, 0)]:
                lines.append(f"  {item['path']} ({', '.join(item['splits'])}): {item['reason']}")
            if len(self.failed) > limit:
                lines.append(f"  ... and {len(self.failed) - limit} more (see report.json)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """The report as a JSON-ready dict, with ``hours`` and ``hours_per_minute`` added."""
        payload = asdict(self)
        payload["hours"] = round(self.hours, 4)
        payload["hours_per_minute"] = round(self.hours_per_minute, 4)
        return payload

    def save(self, path: str) -> None:
        """Write the report as JSON, atomically."""
        atomic_write_bytes(json.dumps(self.to_json(), indent=2, ensure_ascii=False).encode("utf-8") + b"\n", path)

    @classmethod
    def load(cls, path: str) -> "PreprocessReport":
        """Read a report written by :meth:`save`."""
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
        payload.pop("hours", None)
        payload.pop("hours_per_minute", None)
        return cls(**payload)

    def __str__(self) -> str:
        return self.summary()


def report_path(output: str) -> str:
    """Where a run's report is saved: ``<output>/report.json``."""
    return os.path.join(output, "report.json")
