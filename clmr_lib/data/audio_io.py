"""Audio file I/O: header checks, seeking crop reads with down-mix and resampling, atomic writes."""
from __future__ import annotations

import math
import os
import re
import secrets
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# soxr "HQ" (its default): 20-bit precision, pass band to 91% of Nyquist. Measured on a crop
# (44.1 or 48 kHz to 22.05 kHz): 1-2 ms, within 15% of "MQ" and "LQ" and 25-35% faster than
# "VHQ", and cheaper than decoding the crop; "QQ" (cubic interpolation) aliases audibly.
RESAMPLE_QUALITY = "HQ"

# Context read on each side of a crop so that resampled crop samples equal those of a whole-file
# resample; counted at the lower of the two rates, because the filter length scales with it.
# Measured: HQ needs ~100 such samples for 1e-7 agreement, VHQ ~200.
RESAMPLE_MARGIN = 256

# libsndfile estimates the length of an MP3 without a Xing/LAME header from its size and bit rate;
# trailing tags and bit-rate changes make that estimate a little long. Reads that stop short of
# the header's length by at most this much are zero-padded; more than that means truncated data.
_SHORT_READ_FRAMES = 4 * 1152
_SHORT_READ_FRACTION = 0.01

# After a seek, libmpg123 decodes a frame whose bit reservoir starts in earlier frames from
# whatever it has, so the first samples of a crop came out wrong at low bit rates (measured up
# to 0.25 off; libsndfile's own seek pre-roll is too short). Decoding a lead-in first fixes it:
# of 1,900 crops of low-bit-rate files, a 2,304-frame lead-in left 5 wrong and 4,608 none;
# 8 MPEG-1 frames cover the 511-byte reservoir even at 32 kbit/s (costs ~5% of an MP3 crop).
_MP3_PREROLL = 8 * 1152

_EXTENSION_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}
_RIFF_FORMATS = ("WAV", "WAVEX", "RF64", "W64")
# WAV writers that cannot seek back (pipes, streams) leave these placeholders as the data length.
_UNKNOWN_DATA_LENGTHS = (0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000)
_DATA_LENGTH_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_OGG_MAX_PAGE = 27 + 255 + 255 * 255


class AudioReadError(Exception):
    """An audio file that cannot be read: missing, empty, corrupt, truncated or unsupported.

    Args:
        path: The file.
        reason: Why it cannot be read, in a few words (one line).

    Attributes:
        path: The file.
        reason: Why it cannot be read (what skip reports list next to the path).
    """

    def __init__(self, path: str, reason: str):
        self.path = os.fspath(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"cannot read audio file {self.path}: {self.reason}")

    def __reduce__(self):
        # Rebuilt from (path, reason) when it crosses a process boundary (DataLoader workers).
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its audio.

    Args:
        frames: Length in frames (samples per channel) at ``sample_rate``.
        sample_rate: Sample rate in Hz.
        channels: Number of channels.
        format: libsndfile's major format name: ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``, ...
    """

    frames: int
    sample_rate: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate

    def num_samples(self, sample_rate: int) -> int:
        """Length in samples after resampling to ``sample_rate`` (rounded down)."""
        return self.frames * int(sample_rate) // self.sample_rate


def _reason(error: BaseException) -> str:
    """A short, one-line reason for an exception raised while opening or decoding a file."""
    text = getattr(error, "error_string", None) or str(error) or type(error).__name__
    if "does not exist or is not a regular file" in text:
        # libsndfile's MP3 fallback says this about any file it cannot parse; we checked it exists.
        return "not a recognised audio format or corrupt data"
    return " ".join(text.split())


def _open(path: str) -> sf.SoundFile:
    """Open ``path`` for reading, turning every failure into an :class:`AudioReadError`."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise AudioReadError(path, "file not found") from None
    except OSError as error:
        raise AudioReadError(path, error.strerror or _reason(error)) from None
    if os.path.isdir(path):
        raise AudioReadError(path, "is a folder, not a file")
    if size == 0:
        raise AudioReadError(path, "empty file (0 bytes)")
    try:
        return sf.SoundFile(path)
    except Exception as error:  # libsndfile reports corrupt headers in several exception types
        raise AudioReadError(path, _reason(error)) from None


def _header_info(path: str, handle: sf.SoundFile) -> AudioInfo:
    """Validate an open file's header and return it as :class:`AudioInfo`."""
    info = AudioInfo(int(handle.frames), int(handle.samplerate), int(handle.channels), str(handle.format))
    if info.sample_rate <= 0 or info.channels <= 0 or info.frames < 0:
        raise AudioReadError(path, f"corrupt header ({info.frames} frames, {info.sample_rate} Hz, "
                                   f"{info.channels} channels)")
    if info.frames == 0:
        raise AudioReadError(path, "no audio in the file (0 frames)")
    if info.format in _RIFF_FORMATS:
        # libsndfile silently shortens a WAV whose data chunk runs past the end of the file (an
        # interrupted copy or download); only its log tells, and we would rather report the file.
        match = _DATA_LENGTH_LOG.search(handle.extra_info)
        if match:
            declared, present = int(match.group(1)), int(match.group(2))
            if declared not in _UNKNOWN_DATA_LENGTHS and present < declared:
                raise AudioReadError(path, f"truncated: the header declares {declared} bytes of audio data "
                                           f"but the file holds {present} (copy or download it again)")
    return info


def audio_info(path: str, *, verify_end: bool = False) -> AudioInfo:
    """Read a file's header (no decoding unless ``verify_end``).

    Args:
        path: The audio file.
        verify_end: Also decode a few thousand frames at the start and at the end of the stream
            (about as costly as one crop read). This catches data cut short after an intact
            header — a truncated MP3 or FLAC, or an MP3 whose length libsndfile estimated too
            long — which a header alone cannot show.

    Returns:
        The file's :class:`AudioInfo`.

    Raises:
        AudioReadError: The file is missing, empty (0 bytes or 0 frames), not a format libsndfile
            recognises, has a corrupt or truncated header, or (with ``verify_end``) its data does
            not decode to the length in its header.
    """
    path = os.fspath(path)
    with _open(path) as handle:
        info = _header_info(path, handle)
        if verify_end:
            probe = min(info.frames, 2048)
            _read_mono(path, handle, info, 0, probe, tolerate_short=False)
            # The last frame that a read must reach; anything shorter is zero-padded anyway.
            end = max(info.frames - _short_read_tolerance(info), 0)
            start = max(end - probe, 0)
            _read_mono(path, handle, info, start, end - start, tolerate_short=False)
        return info


def _short_read_tolerance(info: AudioInfo) -> int:
    """How many frames a read may fall short of the header's length before it counts as truncated."""
    # Only MP3 lengths can be estimates; the other formats give exact lengths or fail loudly.
    return _SHORT_READ_FRAMES + int(info.frames * _SHORT_READ_FRACTION) if info.format == "MP3" else 0


def _ogg_page_granules(path: str) -> list[int]:
    """Granule positions of the last complete pages of an Ogg file (those of its last stream)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        # Pages are usually a few KiB: try a small tail first, then three maximum-size pages.
        for window in (32 * 1024, 3 * _OGG_MAX_PAGE):
            start = max(size - window, 0)
            handle.seek(start)
            tail = handle.read()
            pages, starts = [], {len(tail)}
            position = tail.find(b"OggS")
            while position >= 0:
                header = tail[position:position + 27]
                if len(header) == 27 and header[4] == 0 and header[5] < 8:
                    starts.add(position)
                    segments = tail[position + 27:position + 27 + header[26]]
                    end = position + 27 + header[26] + sum(segments)
                    if len(segments) == header[26] and end <= len(tail):
                        granule, serial = struct.unpack_from("<qI", header, 6)
                        pages.append((position, end, granule, serial))
                position = tail.find(b"OggS", position + 1)
            # A real page ends where the next one starts or at the end of the file; a capture
            # pattern that happens to occur inside packet data does not chain like that.
            chained = [page for page in pages if page[1] in starts]
            if chained:
                serial = chained[-1][3]
                granules = [page[2] for page in chained if page[3] == serial and page[2] >= 0]
                if len(granules) >= 3 or start == 0:
                    return granules
    return []


def _vorbis_seek_start(path: str, frames: int, start: int) -> int:
    """Where to seek in an Ogg Vorbis file to read from ``start`` without libsndfile's seek error.

    libsndfile 1.2.2 seeks tens to hundreds of samples too far when the target lies in the last
    Ogg page (libsndfile issue 885; measured here on every file tried, never before the last
    page), while decoding straight through that page is right. So for targets in the last page
    we seek to the start of the page before it and decode forward.
    """
    granules = _ogg_page_granules(path)
    if len(granules) < 2:
        return 0
    # Granule positions count from the stream's first sample; libsndfile counts from 0.
    shift = granules[-1] - frames
    last_page_start = granules[-2] - shift
    if start < last_page_start:
        return start
    return max(granules[-3] - shift, 0) if len(granules) >= 3 else 0


def _read_mono(path: str, handle: sf.SoundFile, info: AudioInfo, start: int, count: int,
               tolerate_short: bool = True) -> np.ndarray:
    """Read ``count`` source frames from ``start`` of an open file and down-mix them to mono.

    Returns fewer than ``count`` frames only where the data ends early by no more than
    :func:`_short_read_tolerance` (and ``tolerate_short``); otherwise raises AudioReadError.
    """
    if count <= 0:
        return np.zeros(0, dtype=np.float32)
    position = start
    try:
        if start > 0 and handle.format == "MP3":
            position = max(start - _MP3_PREROLL, 0)
        elif start > 0 and handle.format == "OGG" and handle.subtype == "VORBIS":
            position = _vorbis_seek_start(path, info.frames, start)
        handle.seek(position)
        # One read call: soundfile seeks again after every read, and a seek restarts libmpg123
        # without its bit reservoir (and would hit the Vorbis last-page error), so decoding the
        # lead-in and the crop in two calls would corrupt the crop's first samples.
        data = handle.read(start - position + count, dtype="float32", always_2d=True)[start - position:]
    except Exception as error:  # decoders report damaged data in several exception types
        raise AudioReadError(path, f"cannot decode the audio data ({_reason(error)})") from None
    shortfall = count - data.shape[0]
    if shortfall > (_short_read_tolerance(info) if tolerate_short else 0):
        where = (start + data.shape[0]) / info.sample_rate
        found = f"the audio data ends at {where:.2f} s" if data.shape[0] else f"no audio data at {where:.2f} s"
        cause = "truncated, or an MP3 without a length header" if info.format == "MP3" else "truncated"
        raise AudioReadError(path, f"{cause}: {found} but the header says {info.duration:.2f} s "
                                   "(download or re-encode the file)")
    mono = data[:, 0]
    if data.shape[1] > 1:
        # Column by column: numpy's mean over a short last axis is ~10x slower than a crop's decode.
        mono = mono.copy()
        for channel in range(1, data.shape[1]):
            mono += data[:, channel]
        mono /= data.shape[1]
    if handle.subtype in ("FLOAT", "DOUBLE") and not np.isfinite(mono).all():
        # A NaN in one crop would turn the whole training loss into NaN.
        raise AudioReadError(path, "the audio data contains NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_audio(path: str, sample_rate: int, offset: int = 0, num_samples: Optional[int] = None,
               info: Optional[AudioInfo] = None) -> np.ndarray:
    """Read a mono crop of a file at ``sample_rate``, decoding only the frames it needs.

    The crop ``[offset, offset + num_samples)`` is counted in samples at ``sample_rate``. Only the
    source frames under it (plus :data:`RESAMPLE_MARGIN` of context on each side, aligned to the
    resampler's phase) are decoded; channels are averaged, then resampled with soxr at
    :data:`RESAMPLE_QUALITY`. A crop therefore equals the same slice of a whole-file read: exactly
    at the file's own rate, to about 1e-7 after resampling. Every call opens its own handle, so it
    is safe in DataLoader worker processes and threads.

    Args:
        path: The audio file.
        sample_rate: Target sample rate in Hz.
        offset: First sample of the crop, at ``sample_rate``.
        num_samples: Crop length at ``sample_rate``; ``None`` reads to the end of the file.
        info: The file's :class:`AudioInfo` from an earlier scan, if known. The header is read
            again anyway (opening a file parses it); if it no longer matches, the file changed
            since the scan and AudioReadError is raised rather than reading a different crop.

    Returns:
        float32 array of exactly ``num_samples`` samples (zero-padded past the end of the file),
        or of ``max(length - offset, 0)`` samples when ``num_samples`` is ``None``.

    Raises:
        AudioReadError: The file cannot be opened or decoded, or is truncated.
        ValueError: ``sample_rate``, ``offset`` or ``num_samples`` is out of range.
    """
    path = os.fspath(path)
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if num_samples is not None and num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    offset = int(offset)
    with _open(path) as handle:
        header = _header_info(path, handle)
        if info is not None and info != header:
            raise AudioReadError(path, f"the file changed since it was scanned (was {info}, now {header})")
        total = header.num_samples(sample_rate)
        length = max(total - offset, 0) if num_samples is None else int(num_samples)
        out = np.zeros(length, dtype=np.float32)
        if length == 0 or offset >= total:
            return out
        source_rate = header.sample_rate
        if source_rate == sample_rate:
            audio = _read_mono(path, handle, header, offset, min(length, header.frames - offset))
            out[:audio.shape[0]] = audio
            return out
        # Start and stop on the rational grid where source frame s and target sample t meet
        # (s / source_rate == t / sample_rate) so the crop is resampled with the same filter phase
        # as the whole file; the margin gives the filter the same neighbouring samples.
        common = math.gcd(source_rate, sample_rate)
        target_step, source_step = sample_rate // common, source_rate // common
        margin = math.ceil(RESAMPLE_MARGIN * sample_rate / min(source_rate, sample_rate))
        first = max(offset - margin, 0) // target_step
        source_start = first * source_step
        if offset + length + margin >= total:
            # Up to the true end: the whole-file resample also saw the last partial grid step.
            source_stop = header.frames
        else:
            source_stop = min(-(-(offset + length + margin) // target_step) * source_step, header.frames)
        audio = _read_mono(path, handle, header, source_start, source_stop - source_start)
    resampled = soxr.resample(audio, source_rate, sample_rate, quality=RESAMPLE_QUALITY)
    crop = resampled[offset - first * target_step:][:min(length, total - offset)]
    out[:crop.shape[0]] = crop
    return out


def write_audio(path: str, audio: np.ndarray, sample_rate: int, subtype: Optional[str] = None) -> None:
    """Write an audio file atomically; the format follows the extension (.wav, .flac, .ogg, .mp3).

    The data go to a hidden temporary file in the destination folder, which then replaces
    ``path`` in one step: readers see the old file or the complete new one, never a partial one,
    and a failed write leaves the old file untouched. Parent folders are created.

    Args:
        path: Destination file.
        audio: Samples, ``(frames,)`` or ``(frames, channels)``; floats in [-1, 1] (clipped by
            libsndfile when stored as integers) or int16/int32.
        sample_rate: Sample rate in Hz.
        subtype: libsndfile subtype such as ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``; ``None`` uses
            the format's default (16-bit PCM for WAV and FLAC, Vorbis for OGG, Layer III for MP3).

    Raises:
        ValueError: Unknown extension, a subtype the format cannot hold, or badly shaped audio.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in _EXTENSION_FORMATS:
        raise ValueError(f"cannot write {path}: unknown audio extension; use one of {', '.join(AUDIO_EXTENSIONS)}")
    file_format = _EXTENSION_FORMATS[extension]
    if subtype is not None and not sf.check_format(file_format, subtype):
        raise ValueError(f"cannot write {path}: format {file_format} has no subtype {subtype!r}; "
                         f"choose one of {', '.join(sf.available_subtypes(file_format))}")
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise ValueError(f"cannot write {path}: audio must be (frames,) or (frames, channels) with at least "
                         f"one frame, got shape {audio.shape}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Hidden, so a folder scan never lists a leftover; created with mode 0o666 (minus the umask)
    # rather than mkstemp's 0o600, so the final file gets the usual permissions.
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp{extension}")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        sf.write(temporary, audio, int(sample_rate), subtype=subtype, format=file_format)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            # Durable before it becomes visible, so a crash cannot leave an empty file at path.
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
