"""Downloads of the openly distributed datasets: resumable, checksum-verified, extracted safely."""
from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import tarfile
import urllib.error
import zipfile
from dataclasses import dataclass
from typing import Optional, Sequence
from urllib.request import Request, urlopen

from tqdm import tqdm

from clmr_lib.errors import UserError

CHUNK = 1 << 20
TIMEOUT = 60
USER_AGENT = "clmr_lib (https://github.com/; dataset download)"


@dataclass(frozen=True)
class Remote:
    """One file to download into the dataset folder.

    Args:
        name: File name in the dataset folder.
        urls: Mirrors, tried in order.
        checksum: ``"<algorithm>:<hex digest>"`` (``sha1``, ``md5``, ``sha256``), published by the
            dataset's authors; empty only for the parts of an :class:`Archive` that has its own.
    """

    name: str
    urls: tuple
    checksum: str = ""


@dataclass(frozen=True)
class Archive:
    """A zip or tar archive to unpack into the dataset folder, possibly split into parts.

    Args:
        parts: File names (of downloaded :class:`Remote` files) whose concatenation is the archive.
        checksum: Checksum of the concatenation, when the parts have none of their own.
    """

    parts: tuple
    checksum: str = ""


@dataclass(frozen=True)
class Download:
    """What ``--download`` fetches for a dataset.

    Args:
        folder: Subfolder of ``--dataset_dir`` (the dataset's registry name).
        files: Files to fetch.
        archives: Archives among them to unpack.
    """

    folder: str
    files: tuple
    archives: tuple = ()


def _hash(paths: Sequence[str], checksum: str) -> tuple[str, str]:
    """``(expected, actual)`` hex digests of the concatenation of ``paths``."""
    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm)
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(4 * CHUNK), b""):
                digest.update(block)
    return expected.lower(), digest.hexdigest()


def verify(paths: Sequence[str], checksum: str) -> None:
    """Check the checksum of a file (or of the concatenation of several); delete them if it is wrong.

    Raises:
        UserError: The checksum differs (the files are deleted, so the next run fetches them again).
    """
    expected, actual = _hash(paths, checksum)
    if actual != expected:
        for path in paths:
            os.remove(path)
        names = " + ".join(os.path.basename(p) for p in paths)
        raise UserError(f"checksum mismatch for {names}: expected {checksum}, got {actual}; the download is corrupt "
                        f"(deleted) — run preprocess.py with --download again")


def _fetch_url(url: str, destination: str, progress: bool) -> None:
    """Download ``url`` to ``destination + ".part"`` (resuming it if present), then rename it."""
    partial = destination + ".part"
    done = os.path.getsize(partial) if os.path.exists(partial) else 0
    headers = {"User-Agent": USER_AGENT}
    if done:
        headers["Range"] = f"bytes={done}-"
    with urlopen(Request(url, headers=headers), timeout=TIMEOUT) as response:
        status = getattr(response, "status", 200)
        if status != 206:
            done = 0  # the server ignored the range: start again
        length = response.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        name = os.path.basename(destination)
        with open(partial, "ab" if done else "wb") as handle, \
                tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                bar.update(len(block))
            handle.flush()
            os.fsync(handle.fileno())
    if total is not None and os.path.getsize(partial) != total:
        raise OSError(f"connection closed after {os.path.getsize(partial)} of {total} bytes")
    os.replace(partial, destination)


def fetch(remote: Remote, folder: str, progress: bool = True) -> str:
    """Download one file into ``folder`` unless it is already there, and verify its checksum.

    The data go to ``<name>.part`` (kept on failure, so the next run resumes it with an HTTP
    range request) and are renamed to ``<name>`` once complete; a complete file is never fetched
    again.

    Raises:
        UserError: No mirror could be reached (offline) or the checksum differs.
    """
    destination = os.path.join(folder, remote.name)
    if os.path.exists(destination):
        return destination
    os.makedirs(folder, exist_ok=True)
    errors = []
    for url in remote.urls:
        try:
            _fetch_url(url, destination, progress)
            break
        except urllib.error.HTTPError as error:
            errors.append(f"{url}: HTTP {error.code} {error.reason}")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            errors.append(f"{url}: {reason}")
    else:
        raise UserError(f"cannot download {remote.name} ({'; '.join(errors)}); check your internet connection, or "
                        f"download it yourself into {folder} and run preprocess.py without --download")
    if remote.checksum:
        verify([destination], remote.checksum)
    return destination


class _Concatenation(io.RawIOBase):
    """Read-only, seekable view of several files as one (the parts of a split archive)."""

    def __init__(self, paths: Sequence[str]):
        super().__init__()
        self._handles = [open(p, "rb") for p in paths]
        self._sizes = [os.path.getsize(p) for p in paths]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: sum(self._sizes)}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer) -> int:
        start = 0
        for handle, size in zip(self._handles, self._sizes):
            if self._position < start + size:
                handle.seek(self._position - start)
                count = handle.readinto(memoryview(buffer)[:min(len(buffer), start + size - self._position)])
                self._position += count
                return count
            start += size
        return 0

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def _safe_target(folder: str, name: str) -> Optional[str]:
    """Where an archive member goes, or None for names that would escape ``folder``."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or os.path.isabs(name):
        return None
    return os.path.join(folder, *parts)


def _write_member(source, target: str) -> None:
    """Copy an archive member to ``target`` through a temporary name, so no file is ever half-written."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as handle:
            shutil.copyfileobj(source, handle, CHUNK)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def extract(paths: Sequence[str], folder: str, progress: bool = True) -> None:
    """Unpack a zip or tar archive (given as its parts) into ``folder``; resumable.

    Members already present with their size are kept, so an interrupted extraction continues
    where it stopped; every member is written to a temporary name and renamed. Members whose
    names would leave ``folder`` and links are ignored. A marker file records completion.
    """
    marker = os.path.join(folder, f".{os.path.basename(paths[0])}.extracted")
    if os.path.exists(marker):
        return
    name = os.path.basename(paths[0])
    with _Concatenation(paths) as raw, io.BufferedReader(raw, CHUNK) as stream:
        if zipfile.is_zipfile(stream):
            with zipfile.ZipFile(stream) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                for member in tqdm(members, desc=f"unpacking {name}", unit="file", disable=not progress):
                    target = _safe_target(folder, member.filename)
                    if target is None or (os.path.exists(target) and os.path.getsize(target) == member.file_size):
                        continue
                    with archive.open(member) as source:
                        _write_member(source, target)
        else:
            stream.seek(0)
            try:
                archive = tarfile.open(fileobj=stream, mode="r:*")
            except tarfile.TarError as error:
                raise UserError(f"{name} is neither a zip nor a tar archive ({error}); delete it and download again") \
                    from None
            with archive, tqdm(desc=f"unpacking {name}", unit="file", disable=not progress) as bar:
                for member in archive:
                    target = _safe_target(folder, member.name)
                    if not member.isreg() or target is None:
                        continue
                    if not (os.path.exists(target) and os.path.getsize(target) == member.size):
                        _write_member(archive.extractfile(member), target)
                    bar.update()
    open(marker, "w").close()


def download_dataset(spec: Download, folder: str, progress: bool = True) -> None:
    """Fetch and verify every file of ``spec`` into ``folder``, then unpack its archives there."""
    for remote in spec.files:
        fetch(remote, folder, progress)
    for archive in spec.archives:
        paths = [os.path.join(folder, part) for part in archive.parts]
        marker = os.path.join(folder, f".{archive.parts[0]}.extracted")
        if archive.checksum and not os.path.exists(marker):
            verify(paths, archive.checksum)
        extract(paths, folder, progress)
