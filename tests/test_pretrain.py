"""Pretraining end to end on a tiny folder: checkpoints, resume, load_from_checkpoint, load_encoder."""
import json

import pytest
import torch

from clmr_lib import load_encoder
from clmr_lib.cli.pretrain import main as pretrain_main
from clmr_lib.config import load_config
from clmr_lib.training.contrastive import ContrastiveLearning
from clmr_lib.training.pretrain import run_pretraining
from clmr_lib.training.trainer import devices_for

TINY = {"sample_rate": 16000, "audio_length": 729, "sample_cnn_channels": [8, 8, 8, 8, 8, 8, 16],
        "sample_cnn_strides": [3, 3, 3, 3, 3], "batch_size": 4, "workers": 0, "progress": False,
        "checkpoint_every_n_steps": 1, "checkpoint_every_n_epochs": 1, "log_every_n_steps": 1}


@pytest.fixture
def tiny_config(tmp_path, make_audio_file, broken_audio_files):
    folder = tmp_path / "music"
    for i in range(9):
        make_audio_file(folder / f"t{i}.{['wav', 'flac', 'ogg'][i % 3]}", seconds=0.3,
                        sample_rate=[16000, 22050, 44100][i % 3], channels=1 + i % 2, frequency=200 + 40 * i)
    (folder / "broken.wav").write_bytes(open(broken_audio_files["corrupt_wav"], "rb").read())
    config = load_config()
    config.update(TINY, dataset="audio", dataset_dir=str(folder), log_dir=str(tmp_path / "runs"), run_name="tiny",
                  max_epochs=1)
    return config


def test_pretrain_writes_checkpoint_logs_and_skip_report(tiny_config, tmp_path):
    path = run_pretraining(dict(tiny_config))
    run_dir = tmp_path / "runs" / "tiny"
    assert path == run_dir / "checkpoints" / "last.ckpt" and path.is_file()
    assert list((run_dir / "csv").glob("version_*/metrics.csv")) and (run_dir / "tensorboard").is_dir()
    skipped = json.loads((run_dir / "skipped_files.json").read_text())
    assert skipped["count"] == 1 and skipped["skipped"][0]["path"].endswith("broken.wav")
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] == 2  # 9 files, batch 4, last partial batch dropped

    module = ContrastiveLearning.load_from_checkpoint(path)
    assert module.hparams.encoder_kwargs["channels"] == TINY["sample_cnn_channels"]
    encoder = load_encoder(path)
    assert encoder.embedding_dim == 16 and encoder.sample_rate == 16000 and not encoder.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, module.encoder.state_dict()[key])


def test_resume_continues_with_optimizer_state(tiny_config):
    first = run_pretraining(dict(tiny_config))
    state = torch.load(first, weights_only=True)
    assert state["global_step"] == 2 and state["optimizer_states"][0]["state"]
    resumed = run_pretraining(dict(tiny_config, max_epochs=3, resume=True))
    state = torch.load(resumed, weights_only=True)
    assert state["global_step"] == 6 and state["epoch"] == 3


def test_cli_refuses_to_overwrite_a_run_and_bad_inputs(tiny_config, capsys):
    run_pretraining(dict(tiny_config))
    args = ["--dataset", "audio", "--dataset_dir", tiny_config["dataset_dir"], "--log_dir", tiny_config["log_dir"],
            "--run_name", "tiny"]
    assert pretrain_main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert pretrain_main(["--dataset", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert pretrain_main(["--dataset", "audio", "--batch_size", "1", "--log_dir", tiny_config["log_dir"]]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_gpus_flag_mapping():
    assert devices_for(0)["accelerator"] == "cpu"
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="no GPU"):
            assert devices_for(1)["accelerator"] == "cpu"
        from clmr_lib.errors import UserError

        with pytest.raises(UserError, match="--gpus 2"):
            devices_for(2)


def test_fast_dev_run_checks_the_wiring(tiny_config, tmp_path):
    path = run_pretraining(dict(tiny_config, fast_dev_run=True, run_name="dev"))
    state = torch.load(path, weights_only=True)
    assert state["global_step"] == 1


def test_bf16_mixed_precision_trains_and_updates_the_weights(tiny_config):
    # The demo's precision: BatchNorm statistics and weights stay float32 and change, the loss is finite.
    path = run_pretraining(dict(tiny_config, precision="bf16-mixed", fast_dev_run=True, run_name="bf16"))
    state = torch.load(path, weights_only=True)
    assert state["global_step"] == 1
    initial = ContrastiveLearning(encoder_kwargs={"channels": TINY["sample_cnn_channels"],
                                                  "strides": TINY["sample_cnn_strides"], "sample_rate": 16000,
                                                  "audio_length": 729})
    weights = state["state_dict"]
    assert weights["encoder.sequential.1.1.running_mean"].dtype == torch.float32
    assert not torch.equal(weights["encoder.sequential.1.1.running_mean"],
                           initial.state_dict()["encoder.sequential.1.1.running_mean"])
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
