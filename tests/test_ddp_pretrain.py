"""Multi-process pretraining (DDP over gloo, 2 CPU processes) against one process on the same global batch."""
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from clmr_lib.training.pretrain import build_module, run_pretraining
from tiny_pretraining import (NO_AUGMENTATION, REPO, cli_command, cli_env, load, make_folder, run_cli,  # noqa: F401
                              single_thread, tiny_config, write_yaml)

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(600)]


def test_two_cpu_processes_train_like_one_process_on_the_global_batch(tmp_path, make_audio_file):
    """2 processes × batch 2 with SyncBatchNorm equal 1 process × batch 4, step for step.

    The sampler gives each process its half of every global batch, the crops are drawn per
    example, NT-Xent gathers the negatives of both processes and BatchNorm normalises over the
    global batch; augmentations are off (each process draws its own). LARS: its update of a
    parameter is proportional to the gradient (Adam's sign-like steps turn the ~1e-9 rounding
    noise of gradients that are zero in exact arithmetic — convolution biases before
    BatchNorm — into full-size differences).
    """
    config = tiny_config(make_folder(tmp_path / "music", make_audio_file), tmp_path / "runs", optimizer="LARS",
                         sync_batchnorm=True, max_epochs=2, **NO_AUGMENTATION)
    yaml_path = write_yaml(config, tmp_path / "tiny.yaml")
    result = run_cli("--config", str(yaml_path), "--run_name", "ddp", "--batch_size", "2", "--cpu_processes", "2",
                     timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stdout + result.stderr
    ddp = load(tmp_path / "runs" / "ddp" / "checkpoints" / "last.ckpt")
    single = load(run_pretraining(dict(config, run_name="single", batch_size=4)))
    torch.manual_seed(int(config["seed"]))
    initial = build_module(dict(config, batch_size=4)).state_dict()

    assert ddp["global_step"] == single["global_step"] == 4  # 8 files, global batch 4, 2 epochs
    worst_abs, worst_rel = 0.0, 0.0
    for key, value in single["state_dict"].items():
        if not value.is_floating_point():
            assert torch.equal(value, ddp["state_dict"][key]), key
            continue
        diff = (ddp["state_dict"][key].double() - value.double()).abs().max().item()
        update = (value.double() - initial[key].double()).norm().item()
        worst_abs = max(worst_abs, diff)
        if update > 1e-6:  # skip the parameters that do not move (zero gradient up to rounding)
            worst_rel = max(worst_rel, (ddp["state_dict"][key].double() - value.double()).norm().item() / update)
    print(f"DDP vs single process: max |weight difference| {worst_abs:.2e}, max relative update difference "
          f"{worst_rel:.2e}")
    assert worst_abs < 1e-5 and worst_rel < 1e-3
    # LARS's learning rate follows the global batch (0.3 × 4 / 256) in both runs.
    assert ddp["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.3 * 4 / 256)
    assert single["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.3 * 4 / 256)
    # Every process saved its own random state, seeded apart: no two draw the same augmentations.
    states = ddp["callbacks"]["ExactResume"]["rng"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Lightning's launcher starts ranks 1.. as children of rank 0)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.slow
def test_a_two_process_run_killed_and_resumed_matches_an_uninterrupted_one(tmp_path, make_audio_file):
    """kill -9 of rank 0 mid-run, then --resume on 2 processes: the random state of each rank and the
    position in the epoch come back, so the result equals an uninterrupted 2-process run bit for bit."""
    config = tiny_config(make_folder(tmp_path / "music", make_audio_file), tmp_path / "runs", max_epochs=8)
    yaml_path = write_yaml(config, tmp_path / "tiny.yaml")  # default augmentations: every rank draws its own
    args = ("--config", str(yaml_path), "--batch_size", "2", "--cpu_processes", "2")
    whole = run_cli(*args, "--run_name", "whole", timeout=400)
    assert whole.returncode == 0, whole.stderr[-3000:]

    last = tmp_path / "runs" / "killed" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(cli_command(*args, "--run_name", "killed"), cwd=REPO, env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not last.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, 0.5))
        children = child_pids(process.pid)
        assert process.poll() is None, "the run ended before it could be killed"
        process.kill()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    for pid in children:  # rank 1 notices that rank 0 is gone; make sure it has
        for _ in range(600):
            if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text():
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    step = load(last)["global_step"]
    assert 0 < step < 16
    resumed = run_cli(*args, "--run_name", "killed", "--resume", timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load(last), load(tmp_path / "runs" / "whole" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 16
    for key, value in b["state_dict"].items():
        assert torch.equal(a["state_dict"][key], value), key
