"""preprocess.py on the non-standard datasets: an unlabelled ``audio`` folder and a labelled ``folder``."""
import json
import os

import numpy as np
import soundfile as sf

from clmr_lib.cli.preprocess import main as preprocess_main
from clmr_lib.data import get_dataset
from clmr_lib.data.audio_folder import AudioFolder
from clmr_lib.data.processed import processed_dir
from conftest import write_audio_file

RATE = 16000


def config(dataset, root, **extra):
    return {"dataset": dataset, "dataset_dir": str(root), "sample_rate": RATE, "audio_length": 32000,
            "pad_short": True, "workers": 1, "progress": False, "task": "", **extra}


def stamps(folder):
    """Converted audio file -> (inode, mtime_ns), to tell whether a rerun rewrote it."""
    found = {}
    for current, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".wav"):
                stat = os.stat(os.path.join(current, name))
                found[os.path.join(current, name)] = (stat.st_ino, stat.st_mtime_ns)
    return found


def test_audio_folder_is_converted_once_and_read_from_the_copies(audio_tree, capsys):
    argv = ["--dataset", "audio", "--dataset_dir", audio_tree.root, "--sample_rate", str(RATE), "--workers", "2"]
    assert preprocess_main(argv) == 0
    out = capsys.readouterr().out
    good = audio_tree.readable + [audio_tree.short]
    assert f"converted  {len(good)}" in out and f"failed     {len(audio_tree.broken)}" in out
    folder = processed_dir(audio_tree.root, RATE)
    report = json.load(open(os.path.join(folder, "report.json")))
    assert report["listed"] == len(good) + len(audio_tree.broken)
    assert sorted(f["path"] for f in report["failed"]) == sorted(os.path.join(audio_tree.root, p)
                                                                 for p in audio_tree.broken)
    for relative in good:
        with sf.SoundFile(os.path.join(folder, *relative.split("/")) + ".wav") as handle:
            assert (handle.samplerate, handle.channels) == (RATE, 1)

    dataset = get_dataset(config("audio", audio_tree.root))
    tracks = dataset.tracks("train")
    # Same files, same ids as before preprocessing; now read from the converted copies.
    assert [t.track_id for t in tracks] == sorted(good) and dataset.processed == len(good)
    assert all(t.path.startswith(folder + os.sep) and t.path.endswith(".wav") for t in tracks)
    short = next(t for t in tracks if t.track_id == audio_tree.short)
    assert short.extra["info"].frames == RATE  # 1 s at the converted rate, from the manifest
    # Broken files stay out with the reason preprocessing recorded, not a fresh check of the original.
    assert sorted(p for p, _ in dataset.skipped) == sorted(os.path.join(audio_tree.root, p) for p in audio_tree.broken)
    for relative, words in audio_tree.broken.items():
        assert words in dataset.skipped.reason(os.path.join(audio_tree.root, relative))
    originals = AudioFolder(audio_tree.root, sample_rate=RATE, progress=False, use_processed=False)
    assert [t.track_id for t in originals.tracks("train")] == [t.track_id for t in tracks]
    assert originals.processed == 0 and not any(t.path.startswith(folder) for t in originals.tracks("train"))

    # A rerun converts nothing again (it retries the failures) and rewrites no converted file; a file
    # added later is converted alone.
    before = stamps(folder)
    assert len(before) == len(good)
    assert preprocess_main(argv) == 0
    assert f"skipped    {len(good)}" in capsys.readouterr().out and stamps(folder) == before
    write_audio_file(os.path.join(audio_tree.root, "new.flac"), seconds=2.0, sample_rate=44100)
    assert preprocess_main(argv) == 0
    assert "converted  1" in capsys.readouterr().out
    assert "new.flac" in [t.track_id for t in get_dataset(config("audio", audio_tree.root)).tracks("train")]


def test_audio_folder_hold_out_is_the_same_before_and_after_preprocessing(tmp_path):
    root = tmp_path / "many"
    for i in range(30):
        write_audio_file(root / f"t{i:02d}.wav", seconds=0.2, sample_rate=8000, noise=0.0)
    before = AudioFolder(str(root), sample_rate=RATE, valid_fraction=0.3, progress=False)
    assert preprocess_main(["--dataset", "audio", "--dataset_dir", str(root), "--sample_rate", str(RATE),
                            "--valid_fraction", "0.3", "--workers", "1"]) == 0
    after = AudioFolder(str(root), sample_rate=RATE, valid_fraction=0.3, progress=False)
    assert after.processed == 30
    for split in ("train", "valid", "test"):
        assert [t.track_id for t in after.tracks(split)] == [t.track_id for t in before.tracks(split)]
    assert before.tracks("valid") and before.tracks("train")


def write_labelled(root, outside):
    rows = [("a.wav", "train", "rock"), ("sub/b.flac", "train", "jazz"), ("c.mp3", "valid", "rock"),
            ("broken.wav", "test", "jazz"), ("missing.wav", "test", "rock"), ("d.ogg", "test", "jazz"),
            (os.path.relpath(outside, root), "test", "rock")]
    for relative, _, _ in rows:
        if relative.endswith(("a.wav", "b.flac", "c.mp3", "d.ogg")):
            write_audio_file(os.path.join(root, relative), seconds=2.0, sample_rate=44100, channels=2)
    write_audio_file(outside, seconds=2.0, sample_rate=22050)
    with open(os.path.join(root, "broken.wav"), "wb") as handle:
        handle.write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with open(os.path.join(root, "metadata.csv"), "w") as handle:
        handle.write("path,split,genre\n" + "".join(f"{p},{s},{g}\n" for p, s, g in rows))
    return rows


def test_labelled_folder_keeps_labels_and_splits_after_preprocessing(tmp_path, capsys):
    root, outside = tmp_path / "labelled", str(tmp_path / "elsewhere" / "e.wav")
    rows = write_labelled(root, outside)
    before = get_dataset(config("folder", root))
    assert preprocess_main(["--dataset", "folder", "--dataset_dir", str(root), "--sample_rate", str(RATE)]) == 0
    out = capsys.readouterr().out
    assert "converted  5" in out and "failed     2" in out
    folder = processed_dir(str(root), RATE)
    # A path outside the folder is converted under its absolute path, never written outside processed/.
    assert os.path.isfile(os.path.join(folder, *os.path.abspath(outside).split(os.sep)) + ".wav")
    after = get_dataset(config("folder", root))
    assert after.processed == 5
    for split in ("train", "valid", "test"):
        old, new = before.tracks(split), after.tracks(split)
        assert [(t.track_id, t.label) for t in new] == [(t.track_id, t.label) for t in old]
        assert all(t.path.startswith(folder + os.sep) for t in new)
    assert [t.track_id for t in after.tracks("test")] == ["d.ogg", os.path.relpath(outside, root)]
    assert sorted(os.path.basename(p) for p, _ in after.skipped) == ["broken.wav", "missing.wav"]
    assert "missing" in after.skipped.reason(str(root / "missing.wav"))
    assert len(rows) == 7


def test_converted_paths_never_leave_the_processed_folder(tmp_path):
    from clmr_lib.data.processed import processed_path

    folder = str(tmp_path / "processed" / "16000")
    assert processed_path(folder, "genres/a.mp3", "wav") == os.path.join(folder, "genres", "a.mp3.wav")
    for relative in ("../../etc/x.mp3", "/abs/y.flac", "./a/../b.ogg"):
        path = os.path.normpath(processed_path(folder, relative, "flac"))
        assert path.startswith(folder + os.sep) and path.endswith(".flac"), path


def test_a_dataset_converted_for_another_rate_says_so(tmp_path, caplog):
    root = tmp_path / "songs"
    for i in range(3):
        write_audio_file(root / f"s{i}.wav", seconds=0.5, sample_rate=22050)
    assert preprocess_main(["--dataset", "audio", "--dataset_dir", str(root), "--sample_rate", "22050"]) == 0
    with caplog.at_level("WARNING"):
        dataset = AudioFolder(str(root), sample_rate=RATE, progress=False)
    assert dataset.processed == 0 and len(dataset.tracks("train")) == 3
    assert "converted for 22050 Hz but not for --sample_rate 16000" in caplog.text
    assert "preprocess.py --sample_rate 16000" in caplog.text
