"""Tests for clmr_lib.training.sampling: global batches sharded over ranks, resumable order, seeded crops."""
import pytest
import torch
from torch.utils.data import Dataset

from clmr_lib.training.sampling import GlobalBatchSampler, SeededItems


def per_rank(size, batch_size, world, shuffle=True, epoch=0, seed=0):
    samplers = [GlobalBatchSampler(size, batch_size, shuffle, seed=seed, rank=r, world_size=world)
                for r in range(world)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return samplers


def test_ranks_split_each_global_batch_of_a_single_process_in_rank_order():
    single = GlobalBatchSampler(23, 6, shuffle=True, seed=5, rank=0, world_size=1)
    ranks = per_rank(23, 3, 2, seed=5)
    expected = single.batches(0)
    assert len(expected) == 3  # 23 // 6 global batches; the partial one is dropped
    for step, batch in enumerate(expected):
        assert ranks[0].batches(0)[step] + ranks[1].batches(0)[step] == batch
    for sampler in [single, *ranks]:
        assert len(sampler) == len(list(sampler)) == sum(map(len, sampler.batches(0)))


def test_order_depends_on_seed_and_epoch_only():
    a, b = per_rank(40, 4, 1, seed=1)[0], per_rank(40, 4, 1, seed=1)[0]
    torch.manual_seed(123)  # the global random state plays no part
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(a) != list(per_rank(40, 4, 1, seed=2)[0])
    assert all(epoch == 0 for epoch, _ in a)
    assert all(epoch == 1 for epoch, _ in b)  # training keys carry the epoch: new crops every epoch


@pytest.mark.parametrize("size,batch_size,world", [(7, 2, 2), (5, 4, 3), (1, 3, 2), (12, 3, 2)])
def test_every_rank_gets_equally_many_batches_without_shuffle(size, batch_size, world):
    ranks = per_rank(size, batch_size, world, shuffle=False)
    counts = {len(sampler.batches(0)) for sampler in ranks}
    assert len(counts) == 1  # the same number of steps (collectives) on every rank
    assert {len(sampler) for sampler in ranks} == {sum(map(len, ranks[0].batches(0)))}
    seen = {index for sampler in ranks for _, index in sampler}
    assert seen == set(range(size))  # nothing left out (some repeated to even out)
    assert all(epoch == 0 for sampler in ranks for epoch, _ in sampler)  # same crops every epoch


def test_smaller_than_one_global_batch_is_spread_over_ranks():
    ranks = per_rank(3, 4, 2, shuffle=True)
    assert [len(s.batches(0)) for s in ranks] == [1, 1]
    assert {i for s in ranks for _, i in s} == {0, 1, 2}


def test_resume_skips_trained_batches_then_continues_normally():
    sampler = per_rank(20, 2, 2, seed=3)[0]
    full = list(sampler)
    sampler.resume(0, examples_done=8)  # two global batches of 4 were trained on
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # only the interrupted epoch is shortened


def test_resume_after_a_finished_epoch_starts_the_next_one():
    sampler = per_rank(20, 2, 2, seed=3)[0]
    sampler.resume(0, examples_done=20)
    assert sampler.epoch == 1
    assert list(sampler) == list(per_rank(20, 2, 2, seed=3, epoch=1)[0])


class Noisy(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.rand(3), index


def test_seeded_items_draw_per_epoch_and_index_and_leave_the_global_stream_alone():
    items = SeededItems(Noisy(), seed=7)
    torch.manual_seed(0)
    first = items[(0, 2)][0]
    state = torch.get_rng_state()
    torch.manual_seed(99)
    assert torch.equal(items[(0, 2)][0], first)  # whatever the global state was
    torch.manual_seed(0)
    items[(0, 2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(items[(1, 2)][0], first)
    assert not torch.equal(items[(0, 3)][0], first)
    assert not torch.equal(SeededItems(Noisy(), seed=8)[(0, 2)][0], first)
