"""Crash-safe resume as a user meets it: kill -9 pretrain.py at a random moment, --resume, compare with a whole run."""
import random
import subprocess
import time

import pytest
from lightning.pytorch.callbacks import Callback

import clmr_lib.training.pretrain as pretrain
from clmr_lib.checkpoints import safe_load
from clmr_lib.cli.pretrain import main as pretrain_main
from tiny_pretraining import (REPO, assert_same_tensors, cli_command, cli_env, load, make_folder,  # noqa: F401
                              single_thread, tiny_config, write_yaml)

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(600)]

EPOCHS, STEPS_PER_EPOCH = 25, 4  # 8 files, batch 2


@pytest.fixture
def setup(tmp_path, make_audio_file):
    """A tiny run with the default augmentations and LARS (whose cosine schedule must resume too)."""
    config = tiny_config(make_folder(tmp_path / "music", make_audio_file), tmp_path / "runs", optimizer="LARS",
                         max_epochs=EPOCHS)
    return config, write_yaml(config, tmp_path / "tiny.yaml")


def assert_same_run(a: dict, b: dict, epochs: int = EPOCHS) -> None:
    assert a["global_step"] == b["global_step"] == epochs * STEPS_PER_EPOCH
    assert a["epoch"] == b["epoch"]
    assert_same_tensors(a["state_dict"], b["state_dict"])
    assert_same_tensors(a["optimizer_states"][0], b["optimizer_states"][0])
    assert a["lr_schedulers"] == b["lr_schedulers"]


def kill_at_random_moment(yaml_path, run_dir, log_path, rng: random.Random) -> int:
    """Start pretrain.py, kill -9 it at a random moment after its first checkpoint; the step it had saved."""
    last = run_dir / "checkpoints" / "last.ckpt"
    for attempt in range(3):
        with open(log_path, "w") as log:
            process = subprocess.Popen(cli_command("--config", str(yaml_path), "--run_name", run_dir.name,
                                                   *(["--resume"] if attempt else [])),
                                       cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while not last.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert last.exists(), f"no checkpoint after 240 s:\n{log_path.read_text()[-3000:]}"
            time.sleep(rng.uniform(0.0, 1.0) / (attempt + 1))
            if process.poll() is None:
                process.kill()  # SIGKILL: no handler, no cleanup
                process.wait(30)
                # The moment may have fallen inside a checkpoint write: the file is whole anyway.
                step = safe_load(last)["global_step"]
                assert 0 < step < EPOCHS * STEPS_PER_EPOCH
                return step
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)
    pytest.fail("the run finished three times before it could be killed")


def test_kill_9_then_resume_continues_exactly_like_an_uninterrupted_run(setup, tmp_path, capsys):
    config, yaml_path = setup
    runs = tmp_path / "runs"
    seed = random.randrange(10**6)
    print(f"kill moment seed {seed}")
    step = kill_at_random_moment(yaml_path, runs / "killed", tmp_path / "killed.log", random.Random(seed))
    print(f"killed after global step {step}")

    whole = load(pretrain.run_pretraining(dict(config, run_name="whole")))
    assert pretrain_main(["--config", str(yaml_path), "--run_name", "killed", "--resume"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    resumed = load(runs / "killed" / "checkpoints" / "last.ckpt")
    assert_same_run(resumed, whole)
    assert not list((runs / "killed" / "checkpoints").glob(".*.tmp"))  # a killed write's leftovers are gone


class Crash(Exception):
    pass


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(setup, tmp_path, monkeypatch, capsys):
    config, _ = setup
    config = dict(config, max_epochs=3)
    yaml_path = write_yaml(config, tmp_path / "short.yaml")

    class CrashAt(Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 7:
                raise Crash

    original = pretrain.checkpoint_callbacks
    monkeypatch.setattr(pretrain, "checkpoint_callbacks", lambda *a: [CrashAt(), *original(*a)])
    with pytest.raises(Crash):
        pretrain.run_pretraining(dict(config, run_name="damaged"))
    monkeypatch.undo()
    folder = tmp_path / "runs" / "damaged" / "checkpoints"
    assert load(folder / "last.prev.ckpt")["global_step"] == 6
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])  # e.g. a copy cut short

    with pytest.warns(UserWarning) as caught:
        assert pretrain_main(["--config", str(yaml_path), "--run_name", "damaged", "--resume"]) == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "last.ckpt cannot be read (truncated or corrupt); resuming from" in messages
    assert "last.prev.ckpt (global step 6) instead" in messages
    whole = load(pretrain.run_pretraining(dict(config, run_name="whole")))
    assert_same_run(load(folder / "last.ckpt"), whole, epochs=3)
