"""Inference precision from Lightning's ``--precision`` names: an autocast context for embedding extraction."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from clmr_lib.errors import UserError

#: Lightning's precision names (and their short forms); the float16 ones need a GPU.
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true", "32", "bf16", "16", "64")
GPU_ONLY_PRECISIONS = ("16-mixed", "16-true", "16")
#: Autocast dtype of each name; missing: full precision (the encoder's own float32).
_AUTOCAST = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "bf16": torch.bfloat16,
             "16-mixed": torch.float16, "16-true": torch.float16, "16": torch.float16}


def check_precision(precision: str, gpus: int) -> str:
    """The precision name, checked against the known ones and the device.

    Raises:
        UserError: Unknown name, or a float16 one without a GPU.
    """
    precision = str(precision)
    if precision not in PRECISIONS:
        raise UserError(f"unknown --precision '{precision}'; choose one of: {', '.join(PRECISIONS[:6])}")
    if precision in GPU_ONLY_PRECISIONS and int(gpus) == 0:
        raise UserError(f"--precision {precision} needs a GPU; on the CPU use --precision bf16-mixed or 32-true")
    return precision


def is_full_precision(precision: str) -> bool:
    """Whether ``precision`` runs the encoder as it is (no autocast)."""
    return str(precision) not in _AUTOCAST


def inference_autocast(precision: str, device: str = "cpu"):
    """``torch.autocast`` for the half-precision names (bf16 and float16 run as mixed precision), else nothing.

    Weights stay float32 and autocast picks the half-precision kernels, so a ``*-true`` name runs like
    ``*-mixed`` here: the encoder's weights are never converted.
    """
    dtype = _AUTOCAST.get(str(precision))
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
