"""artist20: album split of the distribution layout, split files, and the course layout with its test folder."""
import os

import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.artist20 import album_split, build_index
from clmr_lib.errors import UserError
from fixtures.fake_datasets import ARTISTS, make_artist20, make_artist20_course


def config(tree, **extra):
    base = {"dataset": "artist20", "dataset_dir": tree.dataset_dir, "sample_rate": 22050, "audio_length": 59049,
            "pad_short": True, "workers": 0, "progress": False, "artist20_layout": "auto", "task": ""}
    return {**base, **extra}


def test_album_split_proportions():
    six = album_split(["f", "e", "d", "c", "b", "a"])
    assert six == {"a": "train", "b": "train", "c": "train", "d": "valid", "e": "test", "f": "test"}
    assert sorted(album_split(list("abc")).values()) == ["test", "train", "valid"]
    assert set(album_split(["a", "b"]).values()) == {"train"}


def test_album_layout(tmp_path):
    tree = make_artist20(tmp_path)
    data = get_dataset(config(tree))
    assert data.task_type == "multiclass" and data.class_names == list(ARTISTS) and data.task == "artist"
    seen = 0
    for split in ("train", "valid", "test"):
        for track in data.tracks(split):
            artist, album, _ = track.track_id.split("/")
            assert tree.album_split[album] == split and data.class_names[track.label] == artist
            assert track.group == f"{artist}/{album}"
            seen += 1
    assert seen == len(tree.good) + 1  # plus the short track, padded
    skipped = dict(data.skipped.items())
    assert set(skipped) == {p for p, kind in tree.faults.items() if kind != "short"}


def test_split_file_overrides_albums(tmp_path):
    tree = make_artist20(tmp_path)
    split_file = tmp_path / "split.csv"
    split_file.write_text("path,split\naerosmith/A_first,test\nbeatles/B_second/02-Song_2.mp3,valid\n")
    index = build_index(config(tree, artist20_split_file=str(split_file)))
    by_id = {e.track_id: e.split for e in index.entries}
    assert by_id["aerosmith/A_first/01-Song_1"] == "test" and by_id["beatles/B_second/02-Song_2"] == "valid"
    assert by_id["beatles/A_first/01-Song_1"] == "train"
    split_file.write_text("path,split\naerosmith/A_first,dev\n")
    with pytest.raises(UserError, match="unknown split 'dev'"):
        build_index(config(tree, artist20_split_file=str(split_file)))


def test_course_layout(tmp_path):
    tree = make_artist20_course(tmp_path)
    data = get_dataset(config(tree))
    train, valid, test = (data.tracks(s) for s in ("train", "valid", "test"))
    assert sorted(t.track_id for t in train) == sorted(os.path.splitext(p)[0][len("train_val/"):] for p in tree.train)
    assert sorted(t.track_id for t in valid) == sorted(os.path.splitext(p)[0][len("train_val/"):] for p in tree.val)
    assert all(data.class_names[t.label] == t.track_id.split("/")[0] for t in train + valid)
    assert [t.track_id for t in test] == tree.test_ids and all(t.label is None for t in test)
    assert data.task_type == "multiclass"
    skipped = dict(data.skipped.items())
    assert set(skipped) == set(tree.faults)
    assert "listed in train.json/val.json but the file is missing" in skipped[
        os.path.join(tree.root, "train_val", "aerosmith", "B_second", "09-Gone.mp3")]


def test_errors(tmp_path):
    tree = make_artist20(tmp_path)
    with pytest.raises(UserError, match="unknown --artist20_layout"):
        build_index(config(tree, artist20_layout="folds"))
    with pytest.raises(UserError, match="not openly downloadable"):
        build_index(config(tree, dataset_dir=str(tmp_path / "none")))
