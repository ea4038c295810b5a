"""Bad linear_evaluation.py input: one line ``error: ...``, exit status 2, before any embedding is extracted."""
import re

import pytest
import torch

from clmr_lib.cli.evaluate import main as evaluate_main
from clmr_lib.evaluation import linear_evaluation

GPUS = torch.cuda.device_count()
#: (flags, pattern of the message). ``{x}`` is filled from the ``paths`` fixture.
BAD_INPUTS = {
    "zero probe batch size": (["--finetuner_batch_size", "0"], r"--finetuner_batch_size 0 must be at least 1"),
    "negative probe batch size": (["--finetuner_batch_size", "-4"], r"--finetuner_batch_size -4 must be at least 1"),
    "zero embedding batch size": (["--embedding_batch_size", "0"], r"--embedding_batch_size 0 must be at least 1"),
    "zero probe epochs": (["--finetuner_max_epochs", "0"], r"--finetuner_max_epochs 0 must be at least 1"),
    "output folder under a file": (["--output_dir", "{file}/results"],
                                   r"cannot write to {file}/results: {file} is a file, not a folder; choose a "
                                   r"writable --output_dir"),
    "output folder is a file": (["--output_dir", "{file}"], r"{file} is a file, not a folder; choose a writable "
                                                           r"--output_dir"),
    "empty dataset_dir": (["--dataset_dir", ""], r"--dataset_dir is empty; pass the folder that holds the dataset"),
    "unknown dataset": (["--dataset", "nope"], r"unknown dataset 'nope' \(--dataset\); choose one of: .*folder"),
    "missing checkpoint": (["--checkpoint", "{missing}"], r"checkpoint {missing} does not exist"),
    "checkpoint is a folder": (["--checkpoint", "{folder}"], r"checkpoint {folder} is a folder; pass a checkpoint file"),
    "checkpoint of random bytes": (["--checkpoint", "{noise}"], r"{noise} is truncated or corrupt .*not a PyTorch "
                                                               r"checkpoint at all"),
    "unknown probe": (["--probes", "bogus"], r"unknown probe 'bogus' \(--probes\); choose from linear, mlp"),
    "negative chunk hop": (["--chunk_hop", "-5"], r"--chunk_hop -5 is negative; use 0"),
    "retrieval K of zero": (["--retrieval_k", "[0]"], r"--retrieval_k \[0\] must list positive integers"),
    "learning rate not finite": (["--finetuner_learning_rate", "nan"],
                                 r"--finetuner_learning_rate nan is not a finite number"),
    "zero sample rate": (["--sample_rate", "0"], r"--sample_rate 0 must be at least 1 \(Hz; CLMR: 22050\)"),
    "embedding cache under a file": (["--embedding_cache_dir", "{file}/cache"],
                                     r"cannot write to {file}/cache: {file} is a file, not a folder; choose a "
                                     r"writable --embedding_cache_dir"),
    **({} if GPUS else {"float16 on the CPU": (["--precision", "16-mixed"],
                                               r"--precision 16-mixed needs a GPU; on the CPU use --precision bf16")}),
    "unknown precision": (["--precision", "half"], r"unknown --precision 'half'; choose one of: 32-true, bf16-mixed"),
    # 2 more than the machine has (--gpus 1 without a GPU falls back to the CPU): --gpus 2 here, without GPUs.
    "more GPUs than the machine has": (["--gpus", str(GPUS + 2)], rf"--gpus {GPUS + 2} asks for {GPUS + 2} GPUs but "
                                                                  rf"this machine has {GPUS}; use --gpus {GPUS}"),
}


class Embedded(Exception):
    """Raised instead of extracting embeddings: the run got past every check."""


@pytest.fixture
def paths(tmp_path, monkeypatch, make_audio_file):
    """A valid tiny run's base command line and the bad things the inputs point to."""
    def embed_splits(*args, **kwargs):
        raise Embedded

    monkeypatch.setattr(linear_evaluation, "embed_splits", embed_splits)
    music = tmp_path / "music"
    rows = ["path,split,genre"]
    for i, split in enumerate(["train", "train", "valid", "test"] * 2):
        make_audio_file(music / f"{i}.wav", seconds=0.1, sample_rate=16000, frequency=200 + 1000 * (i % 2))
        rows.append(f"{i}.wav,{split},{'low' if i % 2 == 0 else 'high'}")
    (music / "metadata.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "noise.ckpt").write_bytes(bytes(range(256)) * 16)
    base = ["--dataset", "folder", "--dataset_dir", str(music), "--task", "genre", "--checkpoint", "random",
            "--sample_rate", "16000", "--audio_length", "729", "--sample_cnn_channels", "[8, 8, 8, 8, 8, 8, 16]",
            "--sample_cnn_strides", "[3, 3, 3, 3, 3]", "--log_dir", str(tmp_path / "runs"), "--progress", "false",
            "--plots", "false"]
    return {"base": base, "file": str(tmp_path / "file.txt"), "missing": str(tmp_path / "nowhere.ckpt"),
            "folder": str(tmp_path), "noise": str(tmp_path / "noise.ckpt")}


def test_the_base_command_passes_every_check(paths):
    with pytest.raises(Embedded):
        evaluate_main(paths["base"])


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_status_2(case, paths, capsys):
    flags, pattern = BAD_INPUTS[case]
    flags = [flag.format(**paths) for flag in flags]
    # A later flag replaces the base command's value (a second --checkpoint is compared beside random).
    assert evaluate_main(paths["base"] + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(pattern.format(**{k: re.escape(v) for k, v in paths.items() if isinstance(v, str)}), err), err
    assert "Traceback" not in err


def test_no_output_folder_is_created_by_a_refused_run(paths, tmp_path, capsys):
    assert evaluate_main(paths["base"] + ["--output_dir", str(tmp_path / "out"), "--probes", "bogus"]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
