"""Bad input wherever a user types something: one line ``error: ...`` naming the problem and the fix, exit status 2."""
import re
import subprocess

import pytest
import torch
from conftest import write_audio_file

from clmr_lib.cli.pretrain import main as pretrain_main
from clmr_lib.errors import UserError
from clmr_lib.training.pretrain import build_module
from tiny_pretraining import REPO, cli_command, cli_env, make_folder, tiny_config, write_yaml

#: (flags, words the message must contain). ``{x}`` is filled from the ``inputs`` fixture.
BAD_INPUTS = {
    "unknown dataset": (["--dataset", "nope"], r"unknown dataset 'nope' \(--dataset\); choose one of: .*audio"),
    "missing dataset_dir": (["--dataset_dir", "{missing}"],
                            r"{missing} does not exist; pass the folder .*--dataset_dir"),
    "empty dataset_dir": (["--dataset_dir", ""], r"--dataset_dir is empty; pass the folder"),
    "dataset_dir is a file": (["--dataset_dir", "{good}"], r"is a file, not a folder; .*--dataset_dir"),
    "folder without audio": (["--dataset_dir", "{no_audio}"], r"no audio files .* found in .*; point --dataset_dir"),
    "checkpoint of another architecture": (["--checkpoint_path", "{other}"],
                                           r"trained with --sample_cnn_channels \[8, 8, 8, 8, 8, 8, 32\], this run has "
                                           r"--sample_cnn_channels \[8, 8, 8, 8, 8, 8, 16\]; pass the checkpoint's"),
    "checkpoint trained with other strides": (
        ["--checkpoint_path", "{good}", "--sample_cnn_strides", "[3, 3, 3, 3, 2]"],
        r"trained with --sample_cnn_strides \[3, 3, 3, 3, 3\]"),
    "encoder weights instead of a training checkpoint": (["--checkpoint_path", "{encoder}"],
                                                         r"not a pretraining checkpoint .*linear_evaluation.py"),
    "truncated checkpoint": (["--checkpoint_path", "{truncated}"], r"{truncated} is truncated or corrupt .*; use an "
                                                                    r"intact checkpoint"),
    "missing checkpoint": (["--checkpoint_path", "{missing}"], r"{missing} does not exist; check --checkpoint_path"),
    "checkpoint is a folder": (["--checkpoint_path", "{folder}"], r"is a folder; pass a checkpoint file"),
    "--resume with only damaged checkpoints": (["--resume", "--run_name", "damaged"],
                                               r"--resume: none of the 1 checkpoints of the run can be read"),
    "rerun without --resume": (["--run_name", "done"], r"already holds a run; pass --resume to continue it, or a new "
                                                       r"--run_name"),
    "zero batch size": (["--batch_size", "0"], r"--batch_size 0: contrastive learning needs at least 2 tracks per "
                                               r"batch; use --batch_size 2 or more"),
    "negative batch size": (["--batch_size", "-8"], r"--batch_size -8: .*use --batch_size 2 or more"),
    "batch size not a number": (["--batch_size", "abc"], r"argument --batch_size: expected an integer, got 'abc'"),
    "audio_length too short for the strides": (
        ["--audio_length", "100"],
        r"--audio_length 100 is too short for SampleCNN strides \[3, 3, 3, 3, 3\]: it reduces to no frame; use "
        r"--audio_length 729 or more"),
    "channels and strides disagree": (["--sample_cnn_strides", "[3, 3]"],
                                      r"--sample_cnn_channels has 7 values and --sample_cnn_strides 2"),
    "unwritable output folder": (["--log_dir", "{good}/runs"], r"cannot write to .* choose a writable --log_dir"),
    "--num_nodes without a launcher": (["--num_nodes", "2"], r"--num_nodes 2 needs a launcher .*SLURM .*torchrun"),
    "16-bit precision on the CPU": (["--precision", "16-mixed"], r"--precision 16-mixed needs a GPU; on the CPU use"),
    "unknown precision": (["--precision", "half"], r"unknown --precision 'half'; choose one of"),
    "unknown optimizer": (["--optimizer", "SGD"], r"unknown --optimizer 'SGD'; choose one of: Adam, LARS"),
    "zero temperature": (["--temperature", "0"], r"--temperature 0.0 must be positive"),
    "negative learning rate": (["--learning_rate", "-1"], r"--learning_rate -1.0 must be positive"),
    "probability above 1": (["--transforms_noise", "2"], r"--transforms_noise 2.0 is a probability"),
    "zero cpu processes": (["--cpu_processes", "0"], r"--cpu_processes 0 must be at least 1"),
    "zero max_nonfinite_steps": (["--max_nonfinite_steps", "0"], r"--max_nonfinite_steps 0 must be at least 1"),
    "missing config file": (["--config", "{missing}"], r"config file {missing} does not exist"),
    "config file is a folder": (["--config", "{folder}"], r"config file {folder} is a folder; pass a YAML file"),
    "--config without a path": (["--config"], r"^error: argument --config: expected one argument \(see --help\)$"),
    "temperature not finite": (["--temperature", "nan"], r"--temperature nan is not a finite number"),
    "learning rate not finite": (["--learning_rate", "inf"], r"--learning_rate inf is not a finite number"),
}
if not torch.cuda.is_available():
    BAD_INPUTS["--gpus 2 without GPUs"] = (["--gpus", "2"], r"--gpus 2 asks for 2 GPUs but this machine has 0; use "
                                                           r"--gpus 0 \(the CPU\)")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Files and folders the bad inputs point to, and the base command line of a tiny valid run."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    music = tmp / "music"
    music.mkdir()
    make_folder(music, lambda path, **kw: write_audio_file(path, **kw), count=4)
    config = tiny_config(music, tmp / "runs")
    module = build_module(config)
    paths = {"missing": str(tmp / "nowhere" / "x"), "folder": str(tmp), "no_audio": str(tmp / "notes"),
             "good": str(tmp / "good.ckpt"), "other": str(tmp / "other.ckpt"), "encoder": str(tmp / "encoder.pt"),
             "truncated": str(tmp / "truncated.ckpt")}
    (tmp / "notes").mkdir()
    (tmp / "notes" / "readme.txt").write_text("no audio here")
    checkpoint = {"state_dict": module.state_dict(), "optimizer_states": [], "hyper_parameters": dict(module.hparams)}
    torch.save(checkpoint, paths["good"])
    other = build_module(dict(config, sample_cnn_channels=[8, 8, 8, 8, 8, 8, 32]))
    torch.save({"state_dict": other.state_dict(), "optimizer_states": [], "hyper_parameters": dict(other.hparams)},
               paths["other"])
    torch.save(module.encoder.state_dict(), paths["encoder"])
    data = (tmp / "good.ckpt").read_bytes()
    (tmp / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    for run, content in (("done", data), ("damaged", data[:100])):
        (tmp / "runs" / run / "checkpoints").mkdir(parents=True)
        (tmp / "runs" / run / "checkpoints" / "last.ckpt").write_bytes(content)
    base = ["--config", str(write_yaml(config, tmp / "tiny.yaml"))]
    return base, paths


def command(inputs, name):
    base, paths = inputs
    flags, pattern = BAD_INPUTS[name]
    flags = [flag.format(**paths) for flag in flags]
    # Paths appear in the messages as typed; escape them for the pattern.
    pattern = pattern.format(**{key: re.escape(value) for key, value in paths.items()})
    if name == "missing config file":
        base = []
    return base + flags, pattern


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_status_2(inputs, name, capsys):
    argv, pattern = command(inputs, name)
    assert pretrain_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err
    assert re.search(pattern, lines[0]), lines[0]


def test_debug_shows_the_traceback(inputs):
    argv, _ = command(inputs, "zero batch size")
    with pytest.raises(UserError, match="--batch_size 0"):
        pretrain_main(argv + ["--debug"])


def run_all(argvs, timeout=300):
    """Run the real CLI once per command line, all at once (they mostly wait for imports)."""
    processes = [subprocess.Popen(cli_command(*argv), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for argv in argvs]
    try:
        return [(p.wait(timeout), *p.communicate()) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def check_real_cli(inputs, names):
    results = run_all([command(inputs, name)[0] for name in names])
    for name, (status, _, err) in zip(names, results):
        assert status == 2, (name, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (name, err[-2000:])
        assert re.search(command(inputs, name)[1], lines[0]), (name, lines[0])


def test_the_real_command_line(inputs):
    """Through ``python pretrain.py`` as a new user runs it: exit status, stderr, no traceback."""
    check_real_cli(inputs, ["truncated checkpoint"])


#: One input per place an error comes from (the others share these code paths; all are checked in-process).
REAL_CLI = ["unknown dataset", "missing dataset_dir", "checkpoint of another architecture", "zero batch size",
            "audio_length too short for the strides", "unwritable output folder", "--num_nodes without a launcher",
            "batch size not a number", "missing config file"]
if "--gpus 2 without GPUs" in BAD_INPUTS:
    REAL_CLI.append("--gpus 2 without GPUs")


@pytest.mark.slow
def test_the_real_command_line_for_each_kind_of_bad_input(inputs):
    for start in range(0, len(REAL_CLI), 4):
        check_real_cli(inputs, REAL_CLI[start:start + 4])
    argv, _ = command(inputs, "zero batch size")
    ((status, _, err),) = run_all([argv + ["--debug"]])
    assert status != 0 and "Traceback" in err and "UserError: --batch_size 0" in err
