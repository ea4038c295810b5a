"""Embedding export: a folder of audio to one .npy file per track and an index, atomic and resumable."""
from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.data.files import find_audio_files
from clmr_lib.data.audio_io import AudioReadError, audio_info, read_audio
from clmr_lib.errors import UserError
from clmr_lib.models.protocol import AudioEncoder
from clmr_lib.utils.atomic import ensure_writable
from clmr_lib.utils.precision import inference_autocast, is_full_precision

#: What can be exported: one vector per track, one per frame, or both.
LEVELS = ("clip", "frames", "both")
#: Written first, compared on every later run into the same folder.
MANIFEST = "export.json"
INDEX_CSV, INDEX_JSON = "index.csv", "index.json"
FORMAT_VERSION = 1
_SUFFIXES = {"clip": ".clip.npy", "frames": ".frames.npy", "timestamps": ".timestamps.npy"}
_COLUMNS = ("track", "status", "reason", "duration_seconds", "n_frames", "clip", "frames", "timestamps")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _fingerprint(encoder: AudioEncoder) -> str:
    from clmr_lib.evaluation.cache import encoder_fingerprint

    return encoder_fingerprint(encoder)


def export_settings(encoder: AudioEncoder, level: str, name: str, precision: str = "32-true") -> dict:
    """What decides the exported files: the encoder (weights included, hashed), its layer, rates, level, precision."""
    frame_hop = getattr(encoder, "frame_hop", None)
    settings = {
        "format_version": FORMAT_VERSION,
        "encoder": name,
        "encoder_class": type(encoder).__name__,
        "fingerprint": _fingerprint(encoder),
        "sample_rate": int(encoder.sample_rate),
        "audio_length": int(encoder.audio_length),
        "layer": encoder.layer,
        "num_layers": int(encoder.num_layers),
        "embedding_dim": int(encoder.embedding_dim),
        "frame_rate": float(encoder.frame_rate),
        "frame_hop_samples": int(frame_hop) if frame_hop is not None else None,
        "level": level,
    }
    if not is_full_precision(precision):  # float32 exports keep the settings they always had
        settings["precision"] = str(precision)
    return settings


def _describe(settings: dict) -> dict:
    """The manifest: settings plus what a reader needs to interpret the files."""
    layers = "(n_layers, dim)" if settings["layer"] == "all" else "(dim,)"
    frames = "(n_frames, n_layers, dim)" if settings["layer"] == "all" else "(n_frames, dim)"
    return dict(settings, files={
        "clip": f"<track>.clip.npy: float32 {layers}, the track's clip embedding",
        "frames": f"<track>.frames.npy: float32 {frames} at frame_rate Hz",
        "timestamps": "<track>.timestamps.npy: float64 (n_frames,), seconds at frame centres (first frame at 0 s)",
        "index": "index.csv / index.json: one row per audio file, status ok or skipped (with the reason)",
    })


def _check_manifest(output_dir: Path, settings: dict, overwrite: bool) -> None:
    path = output_dir / MANIFEST
    if path.is_file() and not overwrite:
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        # A key only one side has counts too (a bf16 export has "precision", a float32 one none).
        keys = set(settings) | ({key for key in previous if key != "files"} if isinstance(previous, dict) else set())
        differs = previous is None or any(previous.get(key) != settings.get(key) for key in keys)
        if differs:
            raise UserError(f"{output_dir} holds embeddings of another encoder, layer, level or precision ({path}); "
                            "choose a new --export_dir, or pass --overwrite to replace them")
    atomic_write_bytes(json.dumps(_describe(settings), indent=2).encode(), path)


def _outputs(output_dir: Path, relative: str, level: str) -> dict[str, Path]:
    kinds = ("clip",) if level == "clip" else ("frames", "timestamps") if level == "frames" else tuple(_SUFFIXES)
    return {kind: output_dir / (relative + _SUFFIXES[kind]) for kind in kinds}


def _read(path: str, sample_rate: int):
    try:
        return read_audio(path, sample_rate), None
    except (AudioReadError, OSError, RuntimeError, ValueError) as error:
        return None, getattr(error, "reason", None) or " ".join(str(error).split()) or type(error).__name__


@torch.no_grad()
def _embed(encoder: AudioEncoder, audio: np.ndarray, level: str, precision: str) -> dict[str, np.ndarray]:
    with inference_autocast(precision, _device(encoder)):
        return _embed_levels(encoder, torch.from_numpy(audio).unsqueeze(0), level)


def _device(encoder: AudioEncoder) -> str:
    parameter = next(encoder.parameters(), None)
    return parameter.device.type if parameter is not None else "cpu"


def _embed_levels(encoder: AudioEncoder, x: torch.Tensor, level: str) -> dict[str, np.ndarray]:
    out = {}
    if level in ("frames", "both"):
        frames, timestamps = encoder.frame_embeddings(x)
        out["frames"] = frames[0].float().cpu().numpy()
        out["timestamps"] = timestamps.numpy().astype(np.float64)
        if level == "both" and getattr(encoder, "clip_is_frame_mean", False):
            out["clip"] = frames[0].float().mean(dim=0).cpu().numpy()
    if level in ("clip", "both") and "clip" not in out:
        out["clip"] = encoder.clip_embeddings(x)[0].float().cpu().numpy()
    return out


def export_embeddings(encoder: AudioEncoder, audio_dir: str | os.PathLike, output_dir: str | os.PathLike,
                      level: str = "clip", name: str = "", overwrite: bool = False, progress: bool = True,
                      precision: str = "32-true") -> dict:
    """Embed every audio file under ``audio_dir`` and write the embeddings under ``output_dir``.

    For an audio file ``<audio_dir>/<rel>`` (e.g. ``rock/song.mp3``) the files are
    ``<output_dir>/<rel>.clip.npy`` (the clip embedding), ``<rel>.frames.npy`` (frame embeddings)
    and ``<rel>.timestamps.npy`` (seconds at frame centres), as ``level`` asks; the full file name
    is kept so that ``song.mp3`` and ``song.wav`` do not collide. ``index.csv`` and ``index.json``
    list every audio file with its status (``ok``, or ``skipped`` with the reason it could not be
    read), duration, frame count and output files; ``export.json`` describes the encoder and the
    array layouts. Audio of any sample rate and channel count is down-mixed and resampled to the
    encoder's rate; long files go through the encoder in bounded windows.

    Every file is written atomically (temporary name, then rename), so an interrupted export
    leaves only complete files, and running the same command again skips the tracks already
    done (delete a track's files, or pass ``overwrite``, to embed it again). Running it with
    another encoder, layer or level into the same folder is refused unless ``overwrite``.

    Args:
        encoder: A frozen :class:`~clmr_lib.models.protocol.AudioEncoder`.
        audio_dir: Folder searched recursively for .wav, .flac, .ogg and .mp3 files.
        output_dir: Where the files go (created).
        level: ``"clip"``, ``"frames"`` or ``"both"``.
        name: The encoder's name for the manifest (checkpoint path or ``musicfm_<stem>_layer<i>``).
        overwrite: Recompute and replace existing files.
        progress: Show a progress bar.
        precision: Lightning's precision name the encoder runs in (``"bf16-mixed"``: bf16 autocast);
            the files hold float32 either way.

    Returns:
        ``n_tracks``, ``exported``, ``reused``, ``skipped`` (``[{"track", "reason"}]``) and the
        paths of ``index`` (CSV), ``index_json`` and ``manifest``.

    Raises:
        UserError: No audio in ``audio_dir``, a wrong ``level``, or ``output_dir`` holding another export.
    """
    if level not in LEVELS:
        raise UserError(f"--level {level!r}: choose one of {', '.join(LEVELS)}")
    audio_dir, output_dir = Path(audio_dir), Path(output_dir)
    try:
        files = find_audio_files(str(audio_dir))
    except UserError as error:
        # The folder scan speaks of datasets; here the folder comes from --audio_dir.
        raise UserError(str(error).replace("--dataset_dir", "--audio_dir")) from error
    root = Path(os.path.abspath(audio_dir))
    ensure_writable(output_dir, "--export_dir")
    encoder.eval()
    settings = export_settings(encoder, level, name or type(encoder).__name__, precision)
    _check_manifest(output_dir, settings, overwrite)

    rows, counts = [], {"exported": 0, "reused": 0}
    todo = []
    for path in files:
        relative = Path(path).relative_to(root).as_posix()
        outputs = _outputs(output_dir, relative, level)
        if not overwrite and all(p.is_file() for p in outputs.values()):
            rows.append(_reused_row(path, relative, outputs, output_dir))
            counts["reused"] += 1
        else:
            todo.append((path, relative, outputs))

    # Decode the next file on a thread while the encoder works on this one (one file ahead only,
    # so memory holds at most two tracks of audio).
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_read, todo[0][0], encoder.sample_rate) if todo else None
        for i, (path, relative, outputs) in enumerate(tqdm(todo, desc="export", disable=not progress)):
            audio, reason = pending.result()
            pending = pool.submit(_read, todo[i + 1][0], encoder.sample_rate) if i + 1 < len(todo) else None
            if audio is None or audio.size == 0:
                rows.append(_row(relative, "skipped", reason or "no audio in the file"))
                continue
            arrays = _embed(encoder, audio, level, precision)
            for kind, target in outputs.items():
                atomic_write_bytes(_npy_bytes(arrays[kind]), target)
            n_frames = len(arrays["frames"]) if "frames" in arrays else None
            rows.append(_row(relative, "ok", "", audio.size / encoder.sample_rate, n_frames, outputs, output_dir))
            counts["exported"] += 1

    rows.sort(key=lambda row: row["track"])
    skipped = [{"track": row["track"], "reason": row["reason"]} for row in rows if row["status"] == "skipped"]
    _write_index(output_dir, rows, settings)
    return {"n_tracks": len(rows), **counts, "skipped": skipped, "index": str(output_dir / INDEX_CSV),
            "index_json": str(output_dir / INDEX_JSON), "manifest": str(output_dir / MANIFEST)}


def _row(track: str, status: str, reason: str = "", duration: Optional[float] = None, n_frames: Optional[int] = None,
         outputs: Optional[dict] = None, output_dir: Optional[Path] = None) -> dict[str, Any]:
    files = {kind: path.relative_to(output_dir).as_posix() for kind, path in (outputs or {}).items()}
    return {"track": track, "status": status, "reason": reason,
            "duration_seconds": round(duration, 6) if duration is not None else None, "n_frames": n_frames,
            "clip": files.get("clip"), "frames": files.get("frames"), "timestamps": files.get("timestamps")}


def _reused_row(path: str, track: str, outputs: dict[str, Path], output_dir: Path) -> dict[str, Any]:
    # Memory-mapped: only the .npy header is read; the duration comes from the audio header.
    n_frames = len(np.load(outputs["frames"], mmap_mode="r")) if "frames" in outputs else None
    try:
        duration = audio_info(path).duration
    except AudioReadError:
        duration = None
    return _row(track, "ok", "", duration, n_frames, outputs, output_dir)


def _write_index(output_dir: Path, rows: list[dict], settings: dict) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in _COLUMNS})
    atomic_write_bytes(buffer.getvalue().encode("utf-8"), output_dir / INDEX_CSV)
    document = {"settings": settings, "tracks": rows}
    atomic_write_bytes(json.dumps(document, indent=2).encode("utf-8"), output_dir / INDEX_JSON)
