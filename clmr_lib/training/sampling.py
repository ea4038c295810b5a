"""Which examples each process trains on, in which order, with which random crops: seeded, sharded, resumable."""
from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
from torch.utils.data import Dataset, Sampler

from clmr_lib.utils import dist
from clmr_lib.utils.rng import derive_seed


class GlobalBatchSampler(Sampler):
    """Order of the examples as global batches, each split across the processes.

    Every epoch the examples are shuffled by a generator seeded with ``(seed, epoch)`` and cut
    into *global* batches of ``batch_size × world_size`` examples; process ``r`` takes the
    ``r``-th block of ``batch_size`` of every global batch. So a run on ``W`` processes sees,
    step by step, exactly the examples a single process with ``batch_size × W`` would see, in
    the same order (rank 0's block first) — which is what lets a DDP run be compared with a
    single-process one, and what makes the order independent of any global random state.

    With ``shuffle`` the incomplete last global batch is dropped (when there is at least one
    full one). Otherwise it is spread over the processes, repeating examples where needed so
    that every process gets equally many: every process must run the same number of steps,
    because each step holds collectives (the NT-Xent gather).

    The yielded keys are ``(crop_epoch, index)`` pairs for :class:`SeededItems`:
    ``crop_epoch`` is the epoch when shuffling (new random crops every epoch) and 0 otherwise
    (validation sees the same crops every epoch, so its losses compare across epochs).

    Rank and world size are read from torch.distributed when the sampler is iterated or
    measured (after the process group exists), unless given.

    Args:
        size: Number of examples.
        batch_size: Examples per process and step.
        shuffle: Shuffle every epoch (training) or keep the order (validation).
        seed: Seed of the order.
        rank: This process's rank (default: from torch.distributed).
        world_size: Number of processes (default: from torch.distributed).
    """

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        if size < 0 or batch_size < 1:
            raise ValueError(f"GlobalBatchSampler needs size >= 0 and batch_size >= 1, got {size} and {batch_size}")
        self.size, self.batch_size, self.shuffle, self.seed = int(size), int(batch_size), bool(shuffle), int(seed)
        self._rank, self._world_size = rank, world_size
        self.epoch = 0
        self._resume_at: Optional[tuple[int, int]] = None

    @property
    def rank(self) -> int:
        """This process's rank."""
        return dist.rank() if self._rank is None else self._rank

    @property
    def world_size(self) -> int:
        """Number of processes sharing each global batch."""
        return dist.world_size() if self._world_size is None else self._world_size

    @property
    def global_batch_size(self) -> int:
        """Examples per step over all processes."""
        return self.batch_size * self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order is yielded next (Lightning calls it before every epoch)."""
        self.epoch = int(epoch)

    def global_batches_per_epoch(self) -> int:
        """Steps per epoch."""
        full, rest = divmod(self.size, self.global_batch_size)
        return full if self.shuffle and full else full + (rest > 0)

    def resume(self, epoch: int, examples_done: int) -> None:
        """Continue an interrupted epoch: skip the global batches whose steps already ran.

        Args:
            epoch: The epoch that was interrupted.
            examples_done: Examples (over all processes) of that epoch already trained on. A
                finished epoch moves on to the start of the next one.
        """
        steps = examples_done // self.global_batch_size
        if steps >= self.global_batches_per_epoch():
            epoch, steps = epoch + 1, 0
        self.epoch = int(epoch)
        self._resume_at = (int(epoch), steps)

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
        return torch.randperm(self.size, generator=generator).tolist()

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch`` (dataset indices), from the epoch's start."""
        order, size, world, rank = self._order(epoch), self.global_batch_size, self.world_size, self.rank
        if self.shuffle and len(order) >= size:
            order = order[:len(order) // size * size]
        mine = []
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            if len(chunk) % world:
                chunk = chunk + (chunk * world)[:world - len(chunk) % world]
            share = len(chunk) // world
            mine.append(chunk[rank * share:(rank + 1) * share])
        return mine

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.global_batch_size)
        if self.shuffle and full:
            return full * self.batch_size
        return full * self.batch_size + math.ceil(rest / self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, 0
        if self._resume_at is not None and self._resume_at[0] == epoch:
            skip = self._resume_at[1]
        self._resume_at = None
        crop_epoch = epoch if self.shuffle else 0
        for batch in self.batches(epoch)[skip:]:
            for index in batch:
                yield crop_epoch, index


class SeededItems(Dataset):
    """A dataset whose random draws per item are a fixed function of ``(seed, epoch, index)``.

    ``dataset[index]`` runs with torch's CPU generator seeded from ``(seed, epoch, index)`` and
    the generator's previous state put back afterwards. An item's random crops therefore do not
    depend on which process, worker or step loads it, nor on what else drew random numbers
    before: the same example gets the same crops in a DDP run and in a single-process run, and a
    resumed run reads exactly the crops the uninterrupted one would have, while the global
    random stream (used by the augmentations) is left untouched.

    Keys are ``(epoch, index)`` pairs, as :class:`GlobalBatchSampler` yields them.

    Args:
        dataset: A map-style dataset drawing its randomness from torch's global CPU generator
            (e.g. :class:`~clmr_lib.data.crops.RandomCrops`).
        seed: The run's seed.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        state = torch.get_rng_state()
        # Only the CPU generator: torch.manual_seed would also reseed the GPU generator that the
        # augmentations draw from when training on a GPU with workers=0.
        torch.default_generator.manual_seed(derive_seed(self.seed, "item", epoch, index))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)
