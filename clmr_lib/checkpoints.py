"""Checkpoints: atomic saving, loading that never runs code, and frozen encoders from any CLMR format."""
from __future__ import annotations

import _compat_pickle
import argparse
import importlib.util
import io
import os
import pickle
import re
import sys
import types
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from clmr_lib.errors import UserError
from clmr_lib.utils.atomic import atomic_write_bytes
from clmr_lib.models.sample_cnn import SampleCNN

#: The only non-builtin classes a real checkpoint needs: CLMR's Lightning checkpoints store their
#: hyperparameters as an ``argparse.Namespace``. Nothing else is ever unpickled.
SAFE_GLOBALS = [argparse.Namespace]

#: A class or function reference the weights-only unpickler refused (blocked module or not allow-listed).
_GLOBAL = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file behind (temp file + rename)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(..., weights_only=True)`` with one-line errors for every way a file can be wrong.

    Only tensors, plain Python types and :data:`SAFE_GLOBALS` are unpickled; a file that would
    run code (any other class or function reference) is refused. A folder, an empty file and a
    file that is not a checkpoint at all (random bytes, a truncated or damaged file) each get
    their own message.

    Raises:
        UserError: The file is missing, a folder, empty, not a readable checkpoint, or unsafe.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder; pass a checkpoint file{_example_in(path)}")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; check --checkpoint_path")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes); it was not written completely — use another one")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = refused_global(str(exc))
        if unsafe is None:
            raise UserError(_corrupt(path, exc)) from exc
        raise UserError(f"refusing to load checkpoint {path}: it holds Python objects that would run code when "
                        f"unpickled (GLOBAL {unsafe[:120]}); load it only if you trust it, and re-save its "
                        "state_dict") from exc
    except Exception as exc:  # noqa: BLE001 -- damaged bytes make the unpickler fail in many ways
        raise UserError(_corrupt(path, exc)) from exc


def refused_global(message: str) -> Optional[str]:
    """The class or function named in a weights-only refusal, if it is a real one (the file would run code).

    Damaged bytes reach the unpickler's global lookup too, with names cut short
    (``collections.OrderedDi``), garbled (``torgh._utils``) or not names at all: those are a
    corrupt file, not code. A name counts as real when it can be found here (see :func:`_findable`).

    Args:
        message: The ``pickle.UnpicklingError`` message of ``torch.load(weights_only=True)``.

    Returns:
        The dotted name (``posix.system``), or None when the error is not a refused real global.
    """
    match = _GLOBAL.search(message)
    if match is None:
        return None
    full = match.group(1)
    module, _, name = full.rpartition(".")
    module = module or "builtins"  # torch names builtins without their module ("GLOBAL eval")
    if not all(part.isidentifier() for part in (*module.split("."), name)):
        return None
    # Protocol 2 (torch.save's) writes Python 2 names, which pickle maps to today's ("commands" -> "subprocess").
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return full if _findable(module, name) else None


def _findable(module: str, name: str) -> bool:
    """Whether ``module.name`` exists here, looked up without importing (so without running) anything new.

    Loaded modules are inspected; the first part of the path that is not loaded is searched for
    with ``find_spec``, which only reads the import path once its parent package is loaded.
    """
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if prefix not in sys.modules:
            try:
                return importlib.util.find_spec(prefix) is not None
            except (ImportError, ValueError):
                return False
    return hasattr(sys.modules[module], name)


def _corrupt(path: Path, exc: BaseException) -> str:
    """The message for a file that does not parse as a checkpoint, with the parser's own reason."""
    # torch wraps the unpickler's reason in paragraphs of advice; keep only the reason.
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = f"{type(exc).__name__}: {lines[0].split('. ')[0][:160]}" if lines else type(exc).__name__
    return f"checkpoint {path} is truncated or corrupt ({reason}), or not a PyTorch checkpoint at all; use an intact " \
        "checkpoint"


def _example_in(folder: Path) -> str:
    """``, e.g. <a checkpoint in the folder>`` (a run folder's ``last.ckpt`` first), or nothing."""
    for pattern in ("last.ckpt", "checkpoints/last.ckpt", "*.ckpt", "checkpoints/*.ckpt", "*.pt", "*.pth"):
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return f", e.g. {found[0]}"
    return ""


def _strip(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _hyper_parameters(checkpoint: dict) -> dict:
    hp = checkpoint.get("hyper_parameters") or {}
    return vars(hp) if isinstance(hp, argparse.Namespace) else dict(hp)


def encoder_state_dict(checkpoint: Any) -> tuple[dict, dict]:
    """Find the SampleCNN weights in any supported checkpoint format.

    Formats: our Lightning checkpoints; CLMR's plain SimCLR state dict (``encoder.*`` +
    ``projector.*``); CLMR's Lightning checkpoint of the contrastive module (``encoder.*`` and
    ``model.encoder.*``); CLMR's linear evaluation checkpoint (``encoder.*`` + ``model.0.*``); and a
    bare SampleCNN state dict (``sequential.*``).

    Returns:
        The encoder's state dict (without ``fc``) and the checkpoint's hyperparameters (may be empty).
    """
    if not isinstance(checkpoint, dict):
        raise ValueError("not a checkpoint dictionary")
    hyper = _hyper_parameters(checkpoint) if "state_dict" in checkpoint else {}
    state = checkpoint.get("state_dict", checkpoint)
    for prefix in ("encoder.", "model.encoder.", ""):
        if f"{prefix}sequential.0.0.weight" in state:
            encoder = _strip(state, prefix) if prefix else dict(state)
            encoder = {k: v for k, v in encoder.items() if k.startswith("sequential.")}
            return encoder, hyper
    raise ValueError("no SampleCNN weights (keys 'encoder.sequential.*' or 'sequential.*') found")


def frozen(module: nn.Module) -> nn.Module:
    """Freeze a module: no gradients, eval mode, and ``.train()`` cannot switch it back.

    Lightning calls ``.train()`` on the whole LightningModule every epoch, which would silently
    resume updating a frozen encoder's BatchNorm statistics; the override keeps them fixed.
    """
    for param in module.parameters():
        param.requires_grad_(False)
    module.eval()
    module.train = types.MethodType(_eval_only, module)  # type: ignore[method-assign]
    return module


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def load_encoder(path: str | os.PathLike, sample_rate: Optional[int] = None, strides: Optional[list] = None) -> SampleCNN:
    """Load a frozen SampleCNN encoder (eval mode, no gradients) from any supported checkpoint.

    Reads our checkpoints and all three original CLMR formats (see :func:`encoder_state_dict`) with
    ``weights_only=True``; the encoder's weights load with strict key matching. The encoder takes
    ``(batch, 1, samples)`` or ``(batch, samples)`` and returns the representation (512-d for CLMR).

    Args:
        path: Checkpoint file.
        sample_rate: Sample rate the encoder was trained at; default from the checkpoint's
            hyperparameters, else CLMR's 22,050 Hz.
        strides: Pool strides (cannot be read from weights); default from the checkpoint, else CLMR's.
    """
    checkpoint = safe_load(path)
    try:
        state, hyper = encoder_state_dict(checkpoint)
    except ValueError as exc:
        raise UserError(f"checkpoint {path} is not a SampleCNN/CLMR checkpoint ({exc}); pass a checkpoint written by "
                        "pretrain.py or by the original CLMR code") from exc
    kwargs = dict(hyper.get("encoder_kwargs") or {})
    kwargs.pop("n_classes", None)
    if strides is not None:
        kwargs["strides"] = strides
    kwargs.setdefault("sample_rate", sample_rate or hyper.get("sample_rate", 22050))
    if sample_rate:
        kwargs["sample_rate"] = sample_rate
    kwargs.setdefault("audio_length", hyper.get("audio_length", 59049))
    kwargs.pop("channels", None)
    try:
        encoder = SampleCNN.from_state_dict(state, **kwargs)
        encoder.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, UserError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise UserError(f"checkpoint {path} does not fit a SampleCNN ({first}); pass a checkpoint of this "
                        "architecture") from exc
    return frozen(encoder)
