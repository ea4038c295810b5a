"""Reading the official MusicFM checkpoint and stats files, with one-line errors for wrong files."""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import torch

from clmr_lib.errors import UserError

MEL_MEAN_KEY = "melspec_2048_mean"
MEL_STD_KEY = "melspec_2048_std"
_HINT = "use pretrained_msd.pt + msd_stats.json (or the fma pair) from huggingface.co/minzwon/MusicFM"
# Tensors the architecture is read from; a file without them is not a MusicFM checkpoint.
_SHAPE_KEYS = (
    "conv.conv.0.conv1.weight",
    "conv.linear.weight",
    "conformer.embed_positions.inv_freq",
    "conformer.layers.0.ffn1.intermediate_dense.weight",
    "quantizer_melspec_2048_0.codebook",
    "linear.weight",
)
_LAYER_KEY = re.compile(r"conformer\.layers\.(\d+)\.")
_LEGACY_WEIGHT_NORM = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


def canonical_key(key: str) -> str:
    """Name a state-dict key the way the official checkpoints do (legacy weight-norm names).

    ``torch.nn.utils.parametrizations.weight_norm`` stores ``conv.parametrizations.weight.original0``
    / ``original1`` where the published files (older torch) have ``conv.weight_g`` / ``weight_v``;
    the parametrization's load hook accepts both, so only key-set comparisons need this.
    """
    for new, old in _LEGACY_WEIGHT_NORM.items():
        if key.endswith(new):
            return key[: -len(new)] + old
    return key


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, torch.Tensor]:
    """Read an official MusicFM checkpoint (``{"state_dict": {"model.<key>": tensor}}``).

    The file is read with ``torch.load(..., weights_only=True)`` and the ``model.`` prefix of the
    Lightning module is removed. A bare state dict of our ``MusicFM`` (no prefix) is accepted too.

    Args:
        path: Checkpoint file (``pretrained_msd.pt`` or ``pretrained_fma.pt``).
        map_location: Passed to ``torch.load``.

    Returns:
        The state dict keyed as ``MusicFM``'s attributes.

    Raises:
        UserError: The file is missing, unreadable, or not a MusicFM checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"MusicFM checkpoint {path} does not exist; {_HINT}")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch.load raises many types for a file that is not a checkpoint
        raise UserError(f"cannot read {path} as a PyTorch checkpoint ({_first_line(error)}); {_HINT}") from error
    state = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not state:
        raise UserError(f"{path} is not a MusicFM checkpoint: no 'state_dict' of tensors; {_HINT}")
    stripped = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{path} is not a MusicFM checkpoint: entry {key!r} is not a named tensor; {_HINT}")
        stripped[key[len("model."):] if key.startswith("model.") else key] = value
    missing = [key for key in _SHAPE_KEYS if key not in stripped]
    if missing:
        raise UserError(f"{path} is not a MusicFM checkpoint: it has no 'model.{missing[0]}'; {_HINT}")
    return stripped


def infer_config(state: dict[str, torch.Tensor], path: str | os.PathLike, num_heads: int = 16) -> dict[str, int]:
    """Read the architecture of a MusicFM checkpoint off its tensor shapes.

    ``conv_dim``, ``encoder_dim``, ``encoder_depth``, ``intermediate_size``, ``n_mels``,
    ``codebook_dim`` and ``codebook_size`` come from shapes. The number of heads is an argument
    (16 for the published checkpoints) checked against the rotary ``inv_freq`` buffer, whose
    length is half the head size.

    Args:
        state: State dict from ``read_checkpoint``.
        path: The checkpoint's path, for error messages.
        num_heads: Attention heads.

    Returns:
        Keyword arguments for ``MusicFM``.

    Raises:
        UserError: The shapes do not fit a MusicFM model or ``num_heads``.
    """
    conv_dim = state["conv.conv.0.conv1.weight"].shape[0]
    encoder_dim, flat = state["conv.linear.weight"].shape
    depth = len({int(match.group(1)) for match in map(_LAYER_KEY.match, state) if match})
    # Two stride-2 convolutions leave n_mels / 4 bands of conv_dim channels for conv.linear.
    n_mels = 4 * (flat // conv_dim)
    if flat % conv_dim:
        raise UserError(f"{path} is not a MusicFM checkpoint: conv.linear takes {flat} inputs, not a multiple of "
                        f"conv_dim={conv_dim}")
    head_dim = 2 * state["conformer.embed_positions.inv_freq"].numel()
    if num_heads < 1 or encoder_dim != num_heads * head_dim:
        raise UserError(f"num_heads={num_heads} does not fit {path}: its rotary table has heads of size {head_dim}, "
                        f"so num_heads={encoder_dim // max(head_dim, 1)}")
    return {
        "conv_dim": conv_dim,
        "encoder_dim": encoder_dim,
        "encoder_depth": depth,
        "num_heads": num_heads,
        "intermediate_size": state["conformer.layers.0.ffn1.intermediate_dense.weight"].shape[0],
        "n_mels": n_mels,
        "codebook_dim": state["quantizer_melspec_2048_0.codebook"].shape[1],
        "codebook_size": state["linear.weight"].shape[0],
    }


def check_state_dict(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: str | os.PathLike
) -> None:
    """Check that a checkpoint has exactly the tensors and shapes of the model.

    Args:
        expected: The model's ``state_dict()``.
        state: State dict from ``read_checkpoint``.
        path: The checkpoint's path, for error messages.

    Raises:
        UserError: A tensor is missing, unexpected, or of another shape.
    """
    want = {canonical_key(key): tensor.shape for key, tensor in expected.items()}
    have = {canonical_key(key): tensor.shape for key, tensor in state.items()}
    missing = sorted(want.keys() - have.keys())
    if missing:
        raise UserError(f"{path} is not a MusicFM checkpoint: {len(missing)} tensors are missing, "
                        f"e.g. 'model.{missing[0]}'; {_HINT}")
    unexpected = sorted(have.keys() - want.keys())
    if unexpected:
        raise UserError(f"{path} is not a MusicFM checkpoint: {len(unexpected)} tensors are unexpected, "
                        f"e.g. 'model.{unexpected[0]}'; {_HINT}")
    for key, shape in want.items():
        if have[key] != shape:
            raise UserError(f"{path} does not fit a MusicFM model: 'model.{key}' has shape {list(have[key])}, "
                            f"expected {list(shape)}")


def read_stats(path: str | os.PathLike) -> tuple[float, float]:
    """Read the mel normalisation statistics (``melspec_2048_mean``, ``melspec_2048_std``).

    Args:
        path: The stats JSON published with the checkpoint (``msd_stats.json`` or ``fma_stats.json``).

    Returns:
        ``(mean, std)`` in dB.

    Raises:
        UserError: The file is missing, not JSON, or lacks valid values.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"MusicFM stats file {path} does not exist; {_HINT}")
    try:
        with open(path, encoding="utf-8") as handle:
            stats = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path} as MusicFM stats JSON ({_first_line(error)}); {_HINT}") from error
    if not isinstance(stats, dict) or MEL_MEAN_KEY not in stats or MEL_STD_KEY not in stats:
        raise UserError(f"{path} is not a MusicFM stats file: it lacks {MEL_MEAN_KEY}/{MEL_STD_KEY}; {_HINT}")
    mean, std = stats[MEL_MEAN_KEY], stats[MEL_STD_KEY]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (mean, std))
    if not numbers or std <= 0:
        raise UserError(f"{path}: {MEL_MEAN_KEY} and {MEL_STD_KEY} must be finite numbers, the std positive")
    return float(mean), float(std)
