"""MagnaTagATune: Pons split from annotations_final.csv or Pons's TSVs, Won split from npy, faults skipped."""
import csv
import os

import numpy as np
import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.magnatagatune import build_index, top50_tags, won_clips, won_tags
from clmr_lib.errors import UserError
from fixtures.fake_datasets import make_magnatagatune


def config(tree, **extra):
    base = {"dataset": "magnatagatune", "dataset_dir": tree.dataset_dir, "sample_rate": 22050, "audio_length": 59049,
            "pad_short": True, "workers": 0, "progress": False, "mtt_split": "pons2017", "task": ""}
    return {**base, **extra}


def test_top50_tags_are_pons_order():
    tags = top50_tags()
    assert len(tags) == 50 == len(set(tags))
    assert tags[:5] == ["guitar", "classical", "slow", "techno", "strings"] and tags[-1] == "choral"


def test_pons_split_labels_and_faults(tmp_path):
    tree = make_magnatagatune(tmp_path)
    data = get_dataset(config(tree))
    assert data.task_type == "multilabel" and data.class_names == tree.tags
    for split in ("train", "valid", "test"):
        tracks = data.tracks(split)
        expected = [c for c in tree.splits[split] if c in tree.usable | tree.short]
        assert [t.track_id for t in tracks] == expected
        for track in tracks:
            np.testing.assert_array_equal(track.label, tree.labels[track.track_id])
    # Labels select columns by name: clip 10 has classical, piano, choral.
    ten = next(t for t in data.tracks("train") if t.track_id == "10")
    assert [data.class_names[i] for i in np.flatnonzero(ten.label)] == ["classical", "piano", "choral"]
    # An untagged clip stays in the split with an all-zero label (as in the Pons split).
    assert next(t for t in data.tracks("test") if t.track_id == "19").label.sum() == 0
    skipped = dict(data.skipped.items())
    assert set(skipped) == {p for p, kind in tree.faults.items() if kind != "short"}
    for path, kind in tree.faults.items():
        if kind == "missing":
            assert "listed in annotations_final.csv but the file is missing" in skipped[path]
        elif kind != "short":
            assert kind in skipped[path].lower()
    # The clip Pons excluded is neither listed nor reported.
    assert not any("norine_braun" in p for p in skipped)


def test_short_clips_skipped_without_padding(tmp_path):
    tree = make_magnatagatune(tmp_path)
    data = get_dataset(config(tree, pad_short=False))
    assert "29" not in [t.track_id for t in data.tracks("train")]
    assert "too short" in data.skipped.reason(tree.paths["29"])


def test_pons_tsv_files_give_the_same_split(tmp_path):
    derived = build_index(config(make_magnatagatune(tmp_path / "a")))
    tree = make_magnatagatune(tmp_path / "b", pons_tsv=True)
    from_tsv = build_index(config(tree))
    assert from_tsv.metadata.startswith("the Pons")
    key = lambda e: (e.split, int(e.track_id))  # noqa: E731 - the TSVs list clips split by split
    derived_entries, tsv_entries = sorted(derived.entries, key=key), sorted(from_tsv.entries, key=key)
    assert [key(e) for e in tsv_entries] == [key(e) for e in derived_entries]
    assert [e.relative for e in tsv_entries] == [e.relative for e in derived_entries]
    for a, b in zip(derived_entries, tsv_entries):
        np.testing.assert_array_equal(a.label, b.label)


def test_won_split_from_npy(tmp_path):
    tree = make_magnatagatune(tmp_path, won=True)
    data = get_dataset(config(tree, mtt_split="won2020"))
    for split in ("train", "valid", "test"):
        expected = [c for c in tree.won_splits[split] if c in tree.usable | tree.short]
        assert [t.track_id for t in data.tracks(split)] == expected
        for track in data.tracks(split):
            np.testing.assert_array_equal(track.label, tree.labels[track.track_id])


def test_errors(tmp_path):
    tree = make_magnatagatune(tmp_path)
    np.save(tmp_path / "magnatagatune" / "binary.npy", np.zeros((1, 50), dtype=np.int64))
    with pytest.raises(UserError, match="Won's own split files are binary.npy, tags.npy") as caught:
        build_index(config(tree, mtt_split="won2020"))
    assert "tags.npy not found" in str(caught.value)
    os.remove(tmp_path / "magnatagatune" / "binary.npy")
    with pytest.raises(UserError, match="unknown --mtt_split"):
        build_index(config(tree, mtt_split="random"))
    with pytest.raises(UserError, match="one task, 'tags'"):
        build_index(config(tree, task="genre"))
    with pytest.raises(UserError, match="annotations_final.csv"):
        build_index(config(tree, dataset_dir=str(tmp_path / "nowhere")))
    np.save(tmp_path / "magnatagatune" / "tags.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    for name in ("binary", "train", "valid", "test"):
        np.save(tmp_path / "magnatagatune" / f"{name}.npy", np.zeros((1, 1)))
    with pytest.raises(UserError, match="does not unpickle"):
        build_index(config(tree, mtt_split="won2020"))


def test_shipped_won_split_has_the_published_sizes_and_folders():
    clips = won_clips()
    sizes = {split: sum(1 for s, _ in clips if s == split) for split in ("train", "valid", "test")}
    assert sizes == {"train": 15244, "valid": 1529, "test": 4332}  # Lee et al. 2017, Table 1
    assert len({path for _, path in clips}) == len(clips)
    folders = {"train": set("0123456789ab"), "valid": {"c"}, "test": set("def")}
    assert all(path[0] in folders[split] and path[1] == "/" and path.endswith(".mp3") for split, path in clips)
    assert ("test", "d/ambient_teknology-the_all_seeing_eye_project-01-cyclops-0-29.mp3") in clips
    # The same 50 tags as the Pons split, in Won's label order (which swaps two of them).
    assert sorted(won_tags()) == sorted(top50_tags()) and won_tags()[47:49] == ["female voice", "metal"]


WON_CLIPS = {  # clip_id: (mp3_path in the shipped won2020 split, tags, kind)
    "900": ("b/wicked_allstars-dark_clouds-11-no_mercy-88-117.mp3", ["techno", "metal"], "good"),
    "901": ("c/william_brooks-fowl_mouth-16-a_boy_outta_love-30-59.mp3", ["female voice"], "good"),
    "902": ("d/ambient_teknology-the_all_seeing_eye_project-01-cyclops-0-29.mp3", ["ambient", "synth"], "good"),
    "903": ("f/various_artists-south_by_southwest_compilation-14-flying_sun_palace-88-117.mp3", ["rock"], "empty"),
}


def test_shipped_won_split_without_wons_files(tmp_path, make_audio_file):
    tree = make_magnatagatune(tmp_path)
    csv_path = os.path.join(tree.root, "annotations_final.csv")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle, delimiter="\t"))
    with open(csv_path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", quotechar='"', quoting=csv.QUOTE_ALL, lineterminator="\n")
        for clip_id, (path, tags, kind) in WON_CLIPS.items():
            writer.writerow([clip_id, *("1" if c in tags else "0" for c in header[1:-1]), path])
            full = os.path.join(tree.root, path)
            if kind == "good":
                make_audio_file(full, seconds=3.0, sample_rate=16000)
            else:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                open(full, "wb").close()
    data = get_dataset(config(tree, mtt_split="won2020"))
    assert data.variant == "won2020 split" and data.class_names == won_tags()
    assert [[t.track_id for t in data.tracks(s)] for s in ("train", "valid", "test")] == [["900"], ["901"], ["902"]]
    for track in (t for s in ("train", "valid", "test") for t in data.tracks(s)):
        tags = WON_CLIPS[track.track_id][1]
        assert [data.class_names[i] for i in np.flatnonzero(track.label)] == [t for t in won_tags() if t in tags]
        assert track.group == WON_CLIPS[track.track_id][0].rsplit("-", 2)[0]
    assert "empty file" in data.skipped.reason(os.path.join(tree.root, WON_CLIPS["903"][0]))
    # Clips of the split the (partial) annotations do not have are reported; clips outside the split are not.
    first = os.path.join(tree.root, won_clips()[0][1])
    assert "in the won2020 split but without a valid row in annotations_final.csv" in data.skipped.reason(first)
    assert not any("artist_a" in path for path, _ in data.skipped)
    assert get_dataset(config(tree)).variant == "pons2017 split"


def test_preprocessing_a_split_none_of_whose_clips_is_annotated_is_a_user_error(tmp_path):
    from clmr_lib.preprocessing.pipeline import run_preprocessing

    tree = make_magnatagatune(tmp_path)  # its clips are made up: none is in the won2020 split
    with pytest.raises(UserError, match="the won2020 split lists no usable file of dataset 'magnatagatune'") as caught:
        run_preprocessing(config(tree, mtt_split="won2020", processed_format="wav"))
    assert "without a valid row in annotations_final.csv" in str(caught.value) and "\n" not in str(caught.value)
