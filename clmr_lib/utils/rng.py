"""Random state: derived seeds, seeding every generator, and RNG snapshots a checkpoint can hold."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def derive_seed(*keys: Any) -> int:
    """A 63-bit seed that is a fixed function of ``keys`` (ints or strings).

    Unlike ``seed + rank`` or ``seed + epoch``, different key tuples never collide in practice,
    and the value is the same on every platform and Python run (no ``hash()`` randomisation).

    Args:
        *keys: What the seed is for, e.g. ``(seed, "rank", 3)``.

    Returns:
        An int in ``[0, 2**63)``, valid for ``torch.manual_seed``.
    """
    text = "\x1f".join(f"{type(key).__name__}:{key}" for key in keys).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def seed_all(seed: int) -> None:
    """Seed torch (CPU and every GPU), numpy's global generator and Python's ``random``."""
    torch.manual_seed(seed)
    # numpy's legacy seeding takes 32 bits only.
    np.random.seed(seed % 2**32)
    random.seed(seed)


def capture() -> dict:
    """The state of torch's, numpy's and Python's global generators, as checkpoint-safe values.

    Everything is a tensor or a plain number, so a checkpoint holding it still loads with
    ``torch.load(..., weights_only=True)`` (numpy arrays and tuples of Python's state do not).

    Returns:
        A dict for :func:`restore`.
    """
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": python_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    """Put the global generators back in a state returned by :func:`capture`.

    Args:
        state: A :func:`capture` result (possibly after a round trip through a checkpoint).
    """
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["gauss"]))
    saved = state["python"]
    random.setstate((saved["version"], tuple(int(v) for v in saved["state"].tolist()), saved["gauss"]))
