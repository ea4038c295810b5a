"""Audio folders: deterministic listing, header scan with skip reports, pad_short, stable hold-out split."""
import os
import pickle

import pytest

from clmr_lib.data.audio_folder import AudioFolder, find_audio_files, scan_audio_files
from clmr_lib.data.audio_io import AudioInfo
from clmr_lib.data.track import Track
from clmr_lib.errors import UserError

CROP = 59049


def absolute(tree, relative_paths):
    return [os.path.join(tree.root, *p.split("/")) for p in relative_paths]


def test_find_lists_audio_recursively_sorted_and_skips_hidden_and_other_files(audio_tree):
    found = find_audio_files(audio_tree.root)
    expected = sorted(absolute(audio_tree, audio_tree.readable + [audio_tree.short] + list(audio_tree.broken)))
    assert found == expected
    assert all(os.path.isabs(p) for p in found)
    assert os.path.join(audio_tree.root, "sub", "E_FLOAT.WAV") in found
    for relative in audio_tree.ignored:
        assert absolute(audio_tree, [relative])[0] not in found
    assert find_audio_files(audio_tree.root + os.sep) == found


def test_find_follows_links_without_looping(audio_tree):
    os.symlink(audio_tree.root, os.path.join(audio_tree.root, "sub", "loop"))
    found = find_audio_files(audio_tree.root)
    assert len(found) == len(set(os.path.realpath(p) for p in found))


def test_find_errors_name_the_folder_and_the_fix(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(UserError, match="does not exist") as caught:
        find_audio_files(missing)
    assert missing in str(caught.value)
    (tmp_path / "file.wav").write_bytes(b"x")
    with pytest.raises(UserError, match="not a folder"):
        find_audio_files(str(tmp_path / "file.wav"))
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(UserError) as caught:
        find_audio_files(str(tmp_path / "texts"))
    message = str(caught.value)
    assert "no audio files" in message and ".wav, .flac, .ogg, .mp3" in message and "\n" not in message


@pytest.mark.parametrize("workers", [1, 4])
def test_scan_keeps_input_order_and_reports_broken_files(audio_tree, workers):
    files = list(reversed(find_audio_files(audio_tree.root)))
    usable, report = scan_audio_files(files, 22050, workers=workers, progress=False)
    good = set(absolute(audio_tree, audio_tree.readable + [audio_tree.short]))
    assert [p for p, _ in usable] == [p for p in files if p in good]
    assert all(isinstance(info, AudioInfo) for _, info in usable)
    assert len(report) == len(audio_tree.broken)
    for path, words in zip(absolute(audio_tree, audio_tree.broken), audio_tree.broken.values()):
        assert words in report.reason(path), report.reason(path)


def test_scan_reports_files_shorter_than_a_crop(audio_tree):
    short = absolute(audio_tree, [audio_tree.short])[0]
    usable, report = scan_audio_files([short], 22050, min_samples=CROP, progress=False)
    assert usable == [] and report.reason(short) == ("too short: 1.00 s < 2.68 s crop "
                                                     "(22050 < 59049 samples at 22050 Hz)")
    usable, report = scan_audio_files([short], 22050, min_samples=0, progress=False)
    assert [p for p, _ in usable] == [short] and not report


def test_scan_keeps_the_callers_path_strings(audio_tree, monkeypatch):
    monkeypatch.chdir(audio_tree.root)
    usable, _ = scan_audio_files(["a_mono.wav", "./sub/c_stereo.ogg"], 22050, progress=False)
    assert [p for p, _ in usable] == ["a_mono.wav", "./sub/c_stereo.ogg"]


def test_audio_folder_lists_readable_files_as_unlabelled_tracks(audio_tree):
    dataset = AudioFolder(audio_tree.root, progress=False)
    assert dataset.task_type is None and dataset.class_names == []
    tracks = dataset.tracks("train")
    assert [t.track_id for t in tracks] == sorted(audio_tree.readable + [audio_tree.short])
    for track in tracks:
        assert isinstance(track, Track) and track.label is None
        assert track.path == os.path.join(audio_tree.root, *track.track_id.split("/"))
        assert isinstance(track.extra["info"], AudioInfo)
    assert dataset.tracks("valid") == [] and dataset.tracks("test") == []
    assert sorted(p for p, _ in dataset.skipped) == sorted(absolute(audio_tree, audio_tree.broken))
    assert not set(t.path for t in tracks) & set(p for p, _ in dataset.skipped)
    # Each call returns fresh tracks: a caller's edits do not leak into the next call.
    tracks[0].extra["info"] = None
    assert dataset.tracks("train")[0].extra["info"] is not None


def test_pad_short_false_skips_and_reports_short_files(audio_tree):
    dataset = AudioFolder(audio_tree.root, pad_short=False, progress=False)
    assert [t.track_id for t in dataset.tracks("train")] == audio_tree.readable
    assert "too short" in dataset.skipped.reason(os.path.join(audio_tree.root, audio_tree.short))
    assert len(dataset.skipped) == len(audio_tree.broken) + 1


def test_valid_fraction_split_is_disjoint_stable_and_local(tmp_path, make_audio_file):
    root = tmp_path / "many"
    for i in range(40):
        make_audio_file(root / f"g{i // 10}" / f"t{i:02d}.wav", seconds=0.05, sample_rate=8000, noise=0.0)
    first = AudioFolder(str(root), valid_fraction=0.3, progress=False)
    train = {t.track_id for t in first.tracks("train")}
    valid = {t.track_id for t in first.tracks("valid")}
    assert train and valid and not train & valid and len(train | valid) == 40
    assert [t.track_id for t in first.tracks("test")] == [t.track_id for t in first.tracks("valid")]
    assert 4 <= len(valid) <= 20
    # Same split on another run, and other files appearing does not move existing ones.
    for i in range(40, 60):
        make_audio_file(root / f"t{i:02d}.wav", seconds=0.05, sample_rate=8000, noise=0.0)
    second = AudioFolder(str(root), valid_fraction=0.3, progress=False)
    assert {t.track_id for t in second.tracks("valid")} & train == set()
    assert valid <= {t.track_id for t in second.tracks("valid")}


def test_unknown_split_and_bad_arguments(audio_tree):
    dataset = AudioFolder(audio_tree.root, progress=False)
    with pytest.raises(UserError, match="unknown split"):
        dataset.tracks("validation_set")
    with pytest.raises(UserError, match="valid_fraction"):
        AudioFolder(audio_tree.root, valid_fraction=1.0, progress=False)
    with pytest.raises(UserError, match="does not exist"):
        AudioFolder(os.path.join(audio_tree.root, "nope"), progress=False)


def test_a_folder_of_only_broken_files_is_a_user_error(tmp_path, broken_audio_files):
    with pytest.raises(UserError, match="none of the 6 audio files"):
        AudioFolder(str(tmp_path / "broken"), progress=False)


def test_dataset_pickles_for_worker_processes(audio_tree):
    dataset = pickle.loads(pickle.dumps(AudioFolder(audio_tree.root, progress=False)))
    assert len(dataset.tracks("train")) == len(audio_tree.readable) + 1 and len(dataset.skipped) == 6


def test_files_converted_by_preprocess_are_not_listed_twice(tmp_path, make_audio_file):
    make_audio_file(tmp_path / "genres" / "a.wav", seconds=0.2, sample_rate=16000)
    converted = tmp_path / "processed" / "22050"
    make_audio_file(converted / "genres" / "a.wav", seconds=0.2, sample_rate=22050)
    (converted / "manifest.json").write_text("{}")
    # A folder named "processed" without a manifest is the user's own audio.
    make_audio_file(tmp_path / "mine" / "processed" / "b.wav", seconds=0.2, sample_rate=16000)
    found = [os.path.relpath(p, tmp_path) for p in find_audio_files(str(tmp_path))]
    assert found == [os.path.join("genres", "a.wav"), os.path.join("mine", "processed", "b.wav")]
