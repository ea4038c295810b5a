"""Checkpoints: atomic saving, loading that never runs code, and frozen encoders from any CLMR format."""
from __future__ import annotations

import argparse
import io
import os
import pickle
import types
import zipfile
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


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file behind (temp file + rename)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(..., weights_only=True)`` with one-line errors for every way a file can be wrong.

    Only tensors, plain Python types and :data:`SAFE_GLOBALS` are unpickled; a file that would
    run code (any other class or function reference) is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; check --checkpoint_path")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes); it was not written completely — use another one")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("\n")
        detail = next((line.strip() for line in reason if "GLOBAL" in line or "Unsupported" in line), reason[0])
        raise UserError(f"refusing to load checkpoint {path}: it holds Python objects that would run code when "
                        f"unpickled ({detail[:160]}); load it only if you trust it, and re-save its state_dict") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({first}); use an intact checkpoint") from exc


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
