"""MagnaTagATune: Pons split from annotations_final.csv or Pons's TSVs, Won split from npy, faults skipped."""
import numpy as np
import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.magnatagatune import build_index, top50_tags
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
    with pytest.raises(UserError, match="won2020 needs binary.npy"):
        build_index(config(tree, mtt_split="won2020"))
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
