"""Checkpoints: the three original CLMR formats load strictly, unsafe or broken files are refused."""
import argparse
import os

import numpy as np
import pytest
import torch

from clmr_lib.checkpoints import atomic_save, encoder_state_dict, load_encoder, safe_load
from clmr_lib.errors import UserError
from clmr_lib.models import ProbeHead, ProjectionHead, SampleCNN


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    encoder = SampleCNN()
    # Non-trivial BatchNorm statistics, so a loader that drops buffers gives other outputs.
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.num_batches_tracked.fill_(1234)
    return encoder.eval()


def prefixed(module, prefix):
    return {prefix + k: v.clone() for k, v in module.state_dict().items()}


def clmr_namespace():
    return argparse.Namespace(batch_size=48, sample_rate=22050, audio_length=59049, projection_dim=64,
                              dataset="magnatagatune", supervised=0)


def format_1(encoder):
    """Release 1.0 (clmr_checkpoint_1550.pt): plain SimCLR state dict."""
    sd = prefixed(encoder, "encoder.")
    sd.update(prefixed(ProjectionHead(512, 512, 64), "projector."))
    return sd


def format_2(encoder):
    """Release 2.0 / main.py: Lightning checkpoint of the contrastive module, encoder stored twice."""
    sd = prefixed(encoder, "encoder.")
    sd.update(prefixed(encoder, "model.encoder."))
    sd.update(prefixed(ProjectionHead(512, 512, 64), "model.projector."))
    return {"pytorch-lightning_version": "1.1.0", "epoch": 9999, "global_step": 123456, "state_dict": sd,
            "hyper_parameters": clmr_namespace(), "optimizer_states": [], "lr_schedulers": []}


def format_3(encoder, mlp):
    """Linear evaluation module (finetuner_checkpoint_*)."""
    sd = prefixed(encoder, "encoder.")
    sd.update(prefixed(ProbeHead(512, 50, mlp=mlp), "model."))
    return {"pytorch-lightning_version": "1.1.0", "epoch": 20, "global_step": 999, "state_dict": sd,
            "hyper_parameters": clmr_namespace()}


def test_format_key_counts(reference):
    assert len(format_1(reference)) == 79
    sd2 = format_2(reference)["state_dict"]
    assert {"model.projector.0.weight", "model.projector.2.weight"} <= set(sd2)
    assert tuple(sd2["model.projector.2.weight"].shape) == (64, 512)
    mlp = format_3(reference, mlp=True)["state_dict"]
    assert tuple(mlp["model.0.weight"].shape) == (512, 512) and tuple(mlp["model.2.weight"].shape) == (50, 512)


@pytest.mark.parametrize("fmt", ["1", "2", "3-linear", "3-mlp", "bare"])
def test_original_formats_load_strictly_and_frozen(tmp_path, reference, fmt):
    obj = {"1": lambda: format_1(reference), "2": lambda: format_2(reference),
           "3-linear": lambda: format_3(reference, False), "3-mlp": lambda: format_3(reference, True),
           "bare": lambda: reference.state_dict()}[fmt]()
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    encoder = load_encoder(path)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    for key, value in reference.state_dict().items():
        assert torch.equal(encoder.state_dict()[key], value), key
    x = torch.randn(2, 1, 59049)
    with torch.no_grad():
        assert torch.allclose(encoder(x), reference(x), atol=1e-5)
        assert encoder(x[:, 0]).shape == (2, 512)
    encoder.train()
    assert not encoder.training  # .train() cannot un-freeze BatchNorm statistics


def test_frozen_encoder_buffers_unchanged_by_forward(tmp_path, reference):
    path = tmp_path / "ckpt.pt"
    torch.save(format_1(reference), path)
    encoder = load_encoder(path)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.train()
    encoder(torch.randn(4, 59049))
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Payload(str(marker))}, path)
    with pytest.raises(UserError, match="refusing to load"):
        load_encoder(path)
    assert not marker.exists()


class _Legacy:
    """Pickled by torch.save's protocol 2 as ``GLOBAL subprocess.Popen`` (``commands.Popen`` in Python 2 names)."""

    def __reduce__(self):
        import subprocess

        return (subprocess.Popen, (["true"],))


class _EvalPayload:
    def __reduce__(self):
        return (eval, ("1",))


def test_unsafe_globals_are_refused_by_name(tmp_path):
    for name, payload in (("popen.pt", _Legacy()), ("eval.pt", _EvalPayload())):
        torch.save({"payload": payload}, tmp_path / name)
        with pytest.raises(UserError, match=r"refusing to load .*would run code when unpickled \(GLOBAL \w"):
            safe_load(tmp_path / name)


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_not_a_checkpoint(tmp_path, seed):
    path = tmp_path / "random.ckpt"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    with pytest.raises(UserError, match=r"random.ckpt is truncated or corrupt \(.*\), or not a PyTorch checkpoint "
                                        r"at all; use an intact checkpoint$") as error:
        safe_load(path)
    assert "would run code" not in str(error.value)


def test_damaged_names_in_a_legacy_checkpoint_are_corruption_not_code(tmp_path):
    """Bytes flipped or cut inside a class name reach the unpickler's global lookup: still a corrupt file."""
    good = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(3)}, good, _use_new_zipfile_serialization=False)
    data = good.read_bytes()
    start = data.index(b"torch\n")
    for damaged in (data[:start] + b"torgh" + data[start + 5:], data[:start + 3]):
        good.write_bytes(damaged)
        with pytest.raises(UserError, match="truncated or corrupt"):
            safe_load(good)


def test_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(UserError, match=r"is a folder; pass a checkpoint file$"):
        safe_load(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    torch.save({}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=r"is a folder; pass a checkpoint file, e.g. .*checkpoints/last.ckpt$"):
        load_encoder(tmp_path)


def test_truncated_empty_missing_and_foreign(tmp_path, reference):
    good = tmp_path / "good.pt"
    torch.save(format_1(reference), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_encoder(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_encoder(empty)
    with pytest.raises(UserError, match="does not exist"):
        load_encoder(tmp_path / "missing.pt")
    foreign = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, foreign)
    with pytest.raises(UserError, match="not a SampleCNN"):
        load_encoder(foreign)
    wrong_shape = format_1(reference)
    wrong_shape["encoder.sequential.1.1.weight"] = torch.zeros(3)
    torch.save(wrong_shape, tmp_path / "wrong.pt")
    with pytest.raises(UserError, match="does not fit"):
        load_encoder(tmp_path / "wrong.pt")


def test_atomic_save_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_save({"a": torch.ones(2)}, path)
    assert torch.equal(safe_load(path)["a"], torch.ones(2))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_save({"a": torch.zeros(2)}, path)
    assert torch.equal(safe_load(path)["a"], torch.ones(2))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_encoder_state_dict_prefers_encoder_prefix(reference):
    state, hyper = encoder_state_dict(format_2(reference))
    assert set(state) == set(reference.state_dict()) and hyper["sample_rate"] == 22050
