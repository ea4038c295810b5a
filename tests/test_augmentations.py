"""Tests of the batched augmentations' shared contract, Compose and build_augmentations."""
from __future__ import annotations

import pytest
import torch

from clmr_lib.augmentations import (
    BatchAugmentation,
    Compose,
    Delay,
    Gain,
    HighLowPass,
    Noise,
    PitchShift,
    PolarityInversion,
    Reverb,
    build_augmentations,
)

SR = 16000

FACTORIES = {
    "polarity": lambda p, g=None: PolarityInversion(p=p, generator=g),
    "noise": lambda p, g=None: Noise(p=p, generator=g),
    "gain": lambda p, g=None: Gain(p=p, generator=g),
    "filters": lambda p, g=None: HighLowPass(SR, p=p, generator=g),
    "delay": lambda p, g=None: Delay(SR, p=p, generator=g),
    "pitch": lambda p, g=None: PitchShift(SR, p=p, generator=g),
    "reverb": lambda p, g=None: Reverb(SR, p=p, generator=g),
}
# The parameter that must differ between examples of one batch.
VARYING = {"noise": "relative_std", "gain": "gain_db", "filters": "cutoff_hz",
           "delay": "delay_samples", "pitch": "semitones", "reverb": "room_size"}


@pytest.fixture
def batch() -> torch.Tensor:
    """Four random half-second clips at 16 kHz."""
    return torch.randn(4, SR // 2, generator=torch.Generator().manual_seed(0)) * 0.1


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_shape_and_dtype_preserved(name, dtype, batch):
    x = batch.to(dtype)
    y = FACTORIES[name](1.0)(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_channel_dimension_kept(name, batch):
    x = batch[:, None, :]
    y = FACTORIES[name](1.0)(x)
    assert y.shape == x.shape
    flat = FACTORIES[name](1.0, torch.Generator().manual_seed(3))(batch)
    again = FACTORIES[name](1.0, torch.Generator().manual_seed(3))(x)
    torch.testing.assert_close(again[:, 0], flat)


@pytest.mark.parametrize("name", FACTORIES)
def test_p_zero_is_identity(name, batch):
    assert torch.equal(FACTORIES[name](0.0)(batch), batch)


@pytest.mark.parametrize("name", FACTORIES)
def test_p_one_changes_every_example(name, batch):
    y = FACTORIES[name](1.0)(batch)
    assert all(not torch.equal(y[i], batch[i]) for i in range(batch.shape[0]))


@pytest.mark.parametrize("name", VARYING)
def test_parameters_differ_across_the_batch(name):
    params = FACTORIES[name](1.0).sample_params(16, torch.device("cpu"))
    assert params["mask"].all()
    values = params[VARYING[name]]
    assert values.shape[0] == 16
    assert values.unique().numel() > 1


@pytest.mark.parametrize("name", FACTORIES)
def test_generator_makes_draws_reproducible(name, batch):
    first = FACTORIES[name](0.5, torch.Generator().manual_seed(7))(batch)
    second = FACTORIES[name](0.5, torch.Generator().manual_seed(7))(batch)
    assert torch.equal(first, second)


def test_global_rng_seeds_draws(batch):
    torch.manual_seed(11)
    first = Gain(p=0.5)(batch)
    torch.manual_seed(11)
    assert torch.equal(Gain(p=0.5)(batch), first)


@pytest.mark.parametrize("name", FACTORIES)
def test_only_selected_examples_change(name):
    x = torch.randn(32, SR // 4, generator=torch.Generator().manual_seed(1)) * 0.1
    transform = FACTORIES[name](0.5, torch.Generator().manual_seed(5))
    y = transform(x)
    params = FACTORIES[name](0.5, torch.Generator().manual_seed(5)).sample_params(32, x.device)
    mask = params["mask"]
    assert 0 < int(mask.sum()) < 32
    assert torch.equal(y[~mask], x[~mask])
    if name != "noise":  # the noise is drawn after selection, so its draws are not replayed
        selected = {k: v[mask] for k, v in params.items() if k != "mask"}
        torch.testing.assert_close(y[mask], transform.apply(x[mask], selected))


def test_mask_frequency_follows_p():
    params = Gain(p=0.3, generator=torch.Generator().manual_seed(0)).sample_params(
        4000, torch.device("cpu"))
    assert abs(params["mask"].float().mean().item() - 0.3) < 0.03


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_invalid_probability_raises(p):
    with pytest.raises(ValueError, match="p must be in"):
        Gain(p=p)


def test_invalid_input_raises():
    with pytest.raises(TypeError):
        Gain(p=1.0)(torch.ones(2, 10, dtype=torch.int32))
    with pytest.raises(ValueError, match="batch, samples"):
        Gain(p=1.0)(torch.ones(10))
    with pytest.raises(ValueError, match="batch, samples"):
        Gain(p=1.0)(torch.ones(2, 2, 10))


def test_invalid_sample_rate_raises():
    with pytest.raises(ValueError, match="sample_rate"):
        Delay(0)


class _AddOne(BatchAugmentation):
    def __init__(self):
        super().__init__(p=1.0)

    def apply(self, x, params):
        return x + 1


class _Double(BatchAugmentation):
    def __init__(self):
        super().__init__(p=1.0)

    def apply(self, x, params):
        return x * 2


def test_compose_applies_in_order():
    x = torch.zeros(2, 5)
    assert torch.equal(Compose([_AddOne(), _Double()])(x), torch.full((2, 5), 2.0))
    assert torch.equal(Compose([_Double(), _AddOne()])(x), torch.full((2, 5), 1.0))


def test_compose_decides_per_example():
    torch.manual_seed(0)
    x = torch.randn(1, SR // 4).repeat(16, 1) * 0.1
    chain = Compose([PolarityInversion(p=0.5), Gain(p=0.5)])
    y = chain(x)
    negated = (y * x).sum(dim=1) < 0
    attenuated = y.abs().sum(dim=1) < x.abs().sum(dim=1) * 0.99
    # Both decisions vary across identical examples, and independently of each other.
    assert 0 < int(negated.sum()) < 16 and 0 < int(attenuated.sum()) < 16
    assert not torch.equal(negated, attenuated)


def test_build_augmentations_order_and_probabilities():
    chain = build_augmentations(22050)
    assert [type(t) for t in chain.transforms] == [
        PolarityInversion, Noise, Gain, HighLowPass, Delay, PitchShift, Reverb]
    assert [t.p for t in chain.transforms] == [0.8, 0.01, 0.3, 0.8, 0.3, 0.6, 0.6]
    assert all(getattr(t, "sample_rate", 22050) == 22050 for t in chain.transforms)


def test_build_augmentations_leaves_out_zero_probabilities():
    chain = build_augmentations(SR, noise=0.0, reverb=0.0)
    assert [type(t) for t in chain.transforms] == [
        PolarityInversion, Gain, HighLowPass, Delay, PitchShift]
    assert len(build_augmentations(SR, 0, 0, 0, 0, 0, 0, 0)) == 0


def test_chain_handles_channel_dim_and_bfloat16():
    chain = build_augmentations(SR, **{k: 1.0 for k in (
        "polarity", "noise", "gain", "filters", "delay", "pitch", "reverb")})
    x = (torch.randn(3, 1, SR // 2) * 0.1).to(torch.bfloat16)
    with torch.no_grad():
        y = chain(x)
    assert y.shape == x.shape and y.dtype == torch.bfloat16
    assert torch.isfinite(y.float()).all()


def test_low_sample_rates_keep_the_lowpass_below_nyquist():
    from clmr_lib.augmentations import HighLowPass, build_augmentations, lowpass_range

    assert lowpass_range(22050) == {"min_lowpass_hz": 2200.0, "max_lowpass_hz": 4000.0}
    chain = build_augmentations(8000)
    filters = [t for t in chain.transforms if isinstance(t, HighLowPass)][0]
    assert filters.max_lowpass_hz < 4000 and filters.min_lowpass_hz < filters.max_lowpass_hz
    out = chain(torch.randn(4, 8000))
    assert out.shape == (4, 8000) and torch.isfinite(out).all()
