"""Preprocessed audio: where converted files live and the manifest saying which ones are complete."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.data.audio_io import AudioInfo
from clmr_lib.errors import UserError

logger = logging.getLogger(__name__)

PROCESSED_DIR = "processed"
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.json"
MANIFEST_VERSION = 1

#: ``--processed_format`` -> (libsndfile format, subtype, extension). 16-bit PCM: the sources are
#: MP3s or 16-bit files, so more bits would store only decoder noise at twice the size.
FORMATS = {
    "wav": ("WAV", "PCM_16", ".wav"),
    "flac": ("FLAC", "PCM_16", ".flac"),
}


def check_format(name: str) -> str:
    """Validate ``--processed_format``; returns the lower-case name."""
    key = str(name).lower()
    if key not in FORMATS:
        raise UserError(f"unknown --processed_format '{name}'; choose one of: {', '.join(FORMATS)}")
    return key


def processed_dir(root: str, sample_rate: int) -> str:
    """The folder holding a dataset's files converted to ``sample_rate``: ``<root>/processed/<rate>``."""
    return os.path.join(root, PROCESSED_DIR, str(int(sample_rate)))


def processed_path(folder: str, relative: str, format_name: str) -> str:
    """Converted file of the source ``relative`` (to the dataset root) inside ``folder``.

    The extension is appended rather than substituted, so ``a.mp3`` and ``a.wav`` side by side
    can never be converted to the same file.
    """
    # An absolute ``relative`` (a file outside the dataset folder) maps to <folder>/<its absolute path>;
    # a ".." a metadata file may hold maps to "_up_", so nothing is ever written outside ``folder``.
    parts = ["_up_" if part == ".." else part for part in relative.split("/") if part not in ("", ".")]
    return os.path.join(folder, *parts) + FORMATS[format_name][2]


def source_stamp(path: str) -> Optional[tuple[int, int]]:
    """``(size, mtime_ns)`` of a source file, or None if it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass
class Manifest:
    """What a preprocessing run produced in one ``processed/<rate>`` folder.

    Args:
        sample_rate: Sample rate of every converted file.
        format: Key of :data:`FORMATS`.
        files: Relative source path -> ``{"frames", "size", "source_size", "source_mtime_ns"}``
            for every complete converted file (``size`` is the converted file's size in bytes).
        failed: Relative source path -> ``{"reason", "source_size", "source_mtime_ns"}`` for the
            files that could not be converted (sizes None for missing files).
    """

    sample_rate: int
    format: str
    files: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)

    def info(self, relative: str) -> AudioInfo:
        """The :class:`AudioInfo` of a converted file, as its header will read (mono)."""
        return AudioInfo(int(self.files[relative]["frames"]), self.sample_rate, 1, FORMATS[self.format][0])

    def usable(self, relative: str, converted: str, source: str) -> bool:
        """Whether the converted file of ``relative`` is complete and its source has not changed since.

        Complete: listed, and its size on disk is the size recorded when it was written (a stat, no
        decoding). A missing source is fine: converted files stand on their own, so the originals
        may be deleted after preprocessing.
        """
        entry = self.files.get(relative)
        if entry is None:
            return False
        try:
            if os.stat(converted).st_size != entry["size"]:
                return False
        except OSError:
            return False
        stamp = source_stamp(source)
        return stamp is None or stamp == (entry.get("source_size"), entry.get("source_mtime_ns"))

    def failure(self, relative: str, source: str) -> Optional[str]:
        """Why ``relative`` could not be converted, if it failed and its source has not changed since.

        Datasets leave such files out with this reason instead of checking the original again: a
        file whose header reads but whose data do not decode would otherwise be trained on from
        the original, unlike what the preprocessing report says.
        """
        entry = self.failed.get(relative)
        if entry is None:
            return None
        recorded = (entry.get("source_size"), entry.get("source_mtime_ns"))
        stamp = source_stamp(source)
        if stamp == recorded or (stamp is None and recorded == (None, None)):
            return entry.get("reason", "could not be converted")
        return None

    def to_json(self) -> dict:
        """The manifest as a JSON-ready dict."""
        return {"version": MANIFEST_VERSION, "sample_rate": self.sample_rate, "format": self.format,
                "files": self.files, "failed": self.failed}

    def save(self, folder: str) -> None:
        """Write ``manifest.json`` atomically (temporary file, then rename)."""
        data = json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        atomic_write_bytes(data, os.path.join(folder, MANIFEST_NAME))

    @classmethod
    def load(cls, folder: str) -> Optional["Manifest"]:
        """Read ``<folder>/manifest.json``; None if there is none or it cannot be used (with a warning)."""
        path = os.path.join(folder, MANIFEST_NAME)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if data.get("version") != MANIFEST_VERSION or data.get("format") not in FORMATS:
                raise ValueError(f"unknown version {data.get('version')} or format {data.get('format')}")
            return cls(int(data["sample_rate"]), data["format"], dict(data["files"]), dict(data.get("failed", {})))
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring unreadable %s (%s); rerun preprocess.py to rebuild it", path, error)
            return None
