"""preprocess.py: conversion once, failures recorded, resume after interruption, report, transparent reading."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from clmr_lib.cli.preprocess import main as preprocess_main
from clmr_lib.data import get_dataset
from clmr_lib.data.audio_io import read_audio
from clmr_lib.data.gtzan import build_index
from clmr_lib.data.processed import Manifest, processed_dir
from clmr_lib.errors import UserError
from clmr_lib.preprocessing import convert as convert_module
from clmr_lib.preprocessing.convert import convert_dataset, convert_file, remove_temporary_files
from clmr_lib.preprocessing.report import PreprocessReport
from conftest import write_audio_file
from fixtures.fake_datasets import make_gtzan

RATE = 16000


def config(tree, **extra):
    base = {"dataset": "gtzan", "dataset_dir": tree.dataset_dir, "sample_rate": RATE, "audio_length": 32000,
            "pad_short": True, "workers": 1, "progress": False, "task": "", "processed_format": "wav"}
    return {**base, **extra}


def outputs(folder):
    """Every file under ``folder`` -> (inode, mtime_ns), to tell whether a rerun rewrote it."""
    found = {}
    for current, _, files in os.walk(folder):
        for name in files:
            stat = os.stat(os.path.join(current, name))
            found[os.path.relpath(os.path.join(current, name), folder)] = (stat.st_ino, stat.st_mtime_ns)
    return found


def test_convert_file(tmp_path):
    source = write_audio_file(tmp_path / "in.flac", seconds=2.0, sample_rate=44100, channels=2)
    result = convert_file(source, str(tmp_path / "out" / "in.flac.wav"), RATE)
    assert result["status"] == "ok" and result["frames"] == 2 * RATE
    with sf.SoundFile(tmp_path / "out" / "in.flac.wav") as handle:
        assert (handle.samplerate, handle.channels, handle.subtype) == (RATE, 1, "PCM_16")
    # The converted file holds the same samples the training reader would produce from the original.
    np.testing.assert_allclose(read_audio(str(tmp_path / "out" / "in.flac.wav"), RATE), read_audio(source, RATE),
                               atol=2 / 32768)
    assert convert_file(str(tmp_path / "nope.wav"), str(tmp_path / "x.wav"), RATE) == {"status": "failed",
                                                                                       "reason": "file not found"}
    (tmp_path / "bad.mp3").write_bytes(b"\x00" * 100)
    assert convert_file(str(tmp_path / "bad.mp3"), str(tmp_path / "x.wav"), RATE)["status"] == "failed"
    assert not os.path.exists(tmp_path / "x.wav")


def test_run_report_and_transparent_reading(tmp_path):
    tree = make_gtzan(tmp_path)
    index = build_index(config(tree))
    report = convert_dataset(index, RATE, workers=2, progress=False)
    good = len(tree.good) + len(tree.short)
    assert (report.listed, report.converted, report.skipped) == (930, good, 0)
    assert len(report.failed) == 930 - good
    assert report.hours == pytest.approx((len(tree.good) * 3.0 + len(tree.short) * 1.0) / 3600, rel=1e-3)
    reasons = {item["path"]: item for item in report.failed}
    jazz = reasons[os.path.join(tree.root, "genres", "jazz", "jazz.00054.wav")]
    assert jazz["splits"] == ["train"] and "recognised" in jazz["reason"].lower()
    assert "listed in the GTZAN filtered split but the file is missing" in \
        reasons[os.path.join(tree.root, "genres", "blues", "blues.00030.wav")]["reason"]
    saved = PreprocessReport.load(os.path.join(report.output, "report.json"))
    assert saved.converted == good and len(saved.failed) == len(report.failed)
    manifest = Manifest.load(processed_dir(tree.root, RATE))
    assert len(manifest.files) == good and len(manifest.failed) == 930 - good

    # The dataset now reads the converted files, with the same tracks, labels and skips.
    direct = get_dataset(config(tree, use_processed=False))
    data = get_dataset(config(tree))
    assert data.processed == good
    for split in ("train", "valid", "test"):
        a, b = direct.tracks(split), data.tracks(split)
        assert [(t.track_id, t.label) for t in a] == [(t.track_id, t.label) for t in b]
        assert all(t.path.startswith(os.path.join(tree.root, "processed", str(RATE))) for t in b)
        assert all(t.extra["info"].frames == read_audio(t.path, RATE).shape[0] for t in b)
    assert set(dict(data.skipped.items())) == set(dict(direct.skipped.items()))
    # Converted files stand on their own: the originals may be deleted.
    os.remove(os.path.join(tree.root, "genres", "rock", "rock.00000.wav"))
    assert "rock.00000" in [t.track_id for t in get_dataset(config(tree)).tracks("train")]
    # Short files are skipped on the manifest's lengths alone when padding is off.
    strict = get_dataset(config(tree, pad_short=False))
    short = os.path.join(tree.root, "genres", "jazz", "jazz.00074.wav")
    assert "too short" in strict.skipped.reason(short)


def test_interrupted_run_resumes_without_rewriting(tmp_path, monkeypatch):
    tree = make_gtzan(tmp_path)
    index = build_index(config(tree))
    folder = processed_dir(tree.root, RATE)
    real, converted = convert_module.convert_file, []

    def flaky(source, destination, *args):
        if len(converted) == 2 and os.path.exists(source):
            # Die in the middle of writing the third file: a partial temporary file is left.
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            with open(os.path.join(os.path.dirname(destination), f".{os.path.basename(destination)}.dead.tmp.wav"),
                      "wb") as handle:
                handle.write(b"RIFF")
            raise KeyboardInterrupt
        result = real(source, destination, *args)
        if result["status"] == "ok":
            converted.append(source)
        return result

    monkeypatch.setattr(convert_module, "convert_file", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert_dataset(index, RATE, workers=1, progress=False)
    report = PreprocessReport.load(os.path.join(folder, "report.json"))
    assert report.interrupted and report.converted == 2
    before = {k: v for k, v in outputs(folder).items()
              if k.endswith(".wav") and not os.path.basename(k).startswith(".")}
    assert len(before) == 2

    monkeypatch.setattr(convert_module, "convert_file", real)
    report = convert_dataset(index, RATE, workers=1, progress=False)
    good = len(tree.good) + len(tree.short)
    assert (report.converted, report.skipped, report.interrupted) == (good - 2, 2, False)
    after = outputs(folder)
    assert not [name for name in after if ".tmp" in os.path.basename(name) or name.endswith(".lock")]
    for name, stamp in before.items():
        assert after[name] == stamp  # finished files were not rewritten

    # A third run converts nothing; a changed source is converted again.
    again = convert_dataset(index, RATE, workers=1, progress=False)
    assert (again.converted, again.skipped) == (0, good)
    source = os.path.join(tree.root, "genres", "blues", "blues.00029.wav")
    write_audio_file(source, seconds=2.0, sample_rate=22050)
    changed = convert_dataset(index, RATE, workers=1, progress=False)
    assert (changed.converted, changed.skipped) == (1, good - 1)


def test_files_written_but_not_recorded_are_adopted(tmp_path):
    tree = make_gtzan(tmp_path)
    index = build_index(config(tree))
    convert_dataset(index, RATE, workers=1, progress=False)
    folder = processed_dir(tree.root, RATE)
    os.remove(os.path.join(folder, "manifest.json"))  # as if killed before the manifest was saved
    report = convert_dataset(index, RATE, workers=1, progress=False)
    assert report.converted == 0 and report.skipped == len(tree.good) + len(tree.short)


def test_file_failing_conversion_is_left_out_of_the_dataset_too(tmp_path, monkeypatch):
    tree = make_gtzan(tmp_path)
    real = convert_module.convert_file
    bad = os.path.join(tree.root, "genres", "rock", "rock.00000.wav")

    def decode_error_mid_file(source, *args):
        if source == bad:  # its header reads fine; pretend its data break half-way
            return {"status": "failed", "reason": "cannot decode the audio data (mid-file)",
                    "source_size": os.path.getsize(bad), "source_mtime_ns": os.stat(bad).st_mtime_ns}
        return real(source, *args)

    monkeypatch.setattr(convert_module, "convert_file", decode_error_mid_file)
    convert_dataset(build_index(config(tree)), RATE, workers=1, progress=False)
    data = get_dataset(config(tree))
    assert "rock.00000" not in [t.track_id for t in data.tracks("train")]
    assert data.skipped.reason(bad) == "cannot decode the audio data (mid-file)"
    assert "rock.00000" in [t.track_id for t in get_dataset(config(tree, use_processed=False)).tracks("train")]


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork")
def test_a_worker_that_dies_costs_only_its_own_file(tmp_path, monkeypatch):
    # A decoder crash or the OOM killer ends a worker process, which breaks the whole pool and
    # every file in flight with it: the run goes on, and only the file that kills a worker fails.
    tree = make_gtzan(tmp_path)
    real = convert_module.convert_file
    bad = os.path.join(tree.root, "genres", "rock", "rock.00000.wav")

    def crash_on_bad(source, *args):
        if source == bad:
            os._exit(1)  # what a segfault or SIGKILL looks like to the pool
        return real(source, *args)

    monkeypatch.setattr(convert_module, "convert_file", crash_on_bad)  # forked workers inherit it
    index = build_index(config(tree))
    report = convert_dataset(index, RATE, workers=2, progress=False)
    good = len(tree.good) + len(tree.short)
    reasons = {item["path"]: item["reason"] for item in report.failed}
    assert "worker converting it died" in reasons[bad]
    assert report.converted == good - 1 and len(report.failed) == 930 - good + 1
    assert sum("worker" in r for r in reasons.values()) == 1
    manifest = Manifest.load(processed_dir(tree.root, RATE))
    assert len(manifest.files) == report.converted and bad in [f["path"] for f in report.failed]


def test_a_file_that_cannot_be_written_fails_alone(tmp_path, monkeypatch):
    tree = make_gtzan(tmp_path)
    real = convert_module.write_audio
    victim = {}

    def write_or_fail(destination, *args, **kwargs):
        if not victim:
            victim["path"] = destination
            raise OSError(5, "Input/output error")  # EIO: not the disk as a whole
        return real(destination, *args, **kwargs)

    monkeypatch.setattr(convert_module, "write_audio", write_or_fail)
    report = convert_dataset(build_index(config(tree)), RATE, workers=1, progress=False)
    reasons = [f["reason"] for f in report.failed]
    assert "cannot write the converted file (Input/output error)" in reasons
    assert report.converted >= 1


def test_entries_the_metadata_rules_out_are_in_the_report(tmp_path):
    tree = make_gtzan(tmp_path)
    index = build_index(config(tree))
    unlabelled = os.path.join(tree.root, "genres", "x", "x.00001.wav")
    index.problems.append((unlabelled, "metadata: no label for x.00001"))
    report = convert_dataset(index, RATE, workers=1, progress=False)
    assert report.excluded == [{"path": unlabelled, "reason": "metadata: no label for x.00001"}]
    assert "excluded   1 entries the metadata itself rules out (e.g. metadata: no label for x.00001;" \
        in report.summary()
    assert PreprocessReport.load(os.path.join(report.output, "report.json")).excluded == report.excluded


def test_guards(tmp_path):
    tree = make_gtzan(tmp_path)
    index = build_index(config(tree))
    convert_dataset(index, RATE, workers=1, progress=False)
    with pytest.raises(UserError, match="--processed_format wav"):
        convert_dataset(index, RATE, "flac", workers=1, progress=False)
    folder = processed_dir(tree.root, RATE)
    lock = os.path.join(folder, ".preprocess.lock")
    # A lock file left by a killed run (its process id, no lock held) does not block the next run.
    with open(lock, "w") as handle:
        handle.write(str(os.getppid()))
    assert convert_dataset(index, RATE, workers=1, progress=False).skipped == len(tree.good) + len(tree.short)
    assert not os.path.exists(lock)
    # A running one does: another open file holding the lock, as another process would.
    import fcntl

    with open(lock, "w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        holder.write("4242")
        holder.flush()
        with pytest.raises(UserError, match=r"another preprocess.py run \(process 4242\)"):
            convert_dataset(index, RATE, workers=1, progress=False)
    os.remove(lock)
    open(os.path.join(folder, ".x.wav.abc.tmp.wav"), "w").close()
    assert remove_temporary_files(folder) == 1


def test_command_line(tmp_path, capsys):
    tree = make_gtzan(tmp_path)
    assert preprocess_main(["--dataset", "gtzan", "--dataset_dir", tree.dataset_dir, "--sample_rate", str(RATE),
                            "--workers", "2", "--processed_format", "flac"]) == 0
    out = capsys.readouterr().out
    assert "converted  7" in out and "failed     923" in out and "hours" in out
    assert json.load(open(os.path.join(tree.root, "processed", str(RATE), "report.json")))["format"] == "flac"
    data = get_dataset(config(tree))
    assert data.processed == 7 and data.tracks("train")[0].path.endswith(".wav.flac")
    assert preprocess_main(["--dataset", "mtt", "--dataset_dir", tree.dataset_dir]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'mtt' (--dataset)" in err and "magnatagatune" in err and "audio" in err
    assert preprocess_main(["--dataset", "artist20", "--dataset_dir", str(tmp_path), "--download"]) == 2
    assert "not openly downloadable" in capsys.readouterr().err
