"""FMA: tracks.csv with its real header rows, small and medium subsets, official split, faults skipped."""
import csv

import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.fma import build_index, read_tracks
from clmr_lib.errors import UserError
from fixtures.fake_datasets import make_fma

SPLITS = {"training": "train", "validation": "valid", "test": "test"}


def config(tree, **extra):
    base = {"dataset": "fma", "dataset_dir": tree.dataset_dir, "sample_rate": 22050, "audio_length": 59049,
            "pad_short": True, "workers": 0, "progress": False, "fma_subset": "small", "task": ""}
    return {**base, **extra}


def test_read_tracks_keeps_three_columns_despite_free_text(tmp_path):
    tree = make_fma(tmp_path)
    rows = read_tracks(f"{tree.root}/fma_metadata/tracks.csv")
    assert set(rows) == {str(t[0]) for t in tree.tracks}
    assert rows["99134"] == {"split": "training", "subset": "small", "genre_top": "Pop"}


def test_read_tracks_finds_the_columns_by_name_in_any_order(tmp_path):
    tree = make_fma(tmp_path)
    path = f"{tree.root}/fma_metadata/tracks.csv"
    expected = read_tracks(path)
    with open(path, newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    # Reverse every column after the index: genre_top now comes before ('set', 'subset') and ('set', 'split').
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows([row[:1] + row[:0:-1] for row in table])
    assert read_tracks(path) == expected


def test_small_subset(tmp_path):
    tree = make_fma(tmp_path)
    data = get_dataset(config(tree))
    assert data.task_type == "multiclass" and data.class_names == ["Folk", "Hip-Hop", "Pop", "Rock"]
    expected = {f"{n:06d}": (SPLITS[split], genre) for n, split, subset, genre, kind in tree.tracks
                if subset == "small" and kind in ("good", "short")}
    found = {t.track_id: (split, data.class_names[t.label]) for split in ("train", "valid", "test")
             for t in data.tracks(split)}
    assert found == expected
    assert data.tracks("train")[0].path.endswith("fma_small/000/000002.mp3")
    skipped = dict(data.skipped.items())
    assert set(skipped) == {p for p, kind in tree.faults.items() if kind != "short"}
    assert "empty file" in skipped[f"{tree.root}/fma_small/099/099134.mp3"]
    assert "listed in tracks.csv but the file is missing" in skipped[f"{tree.root}/fma_small/108/108925.mp3"]


def test_medium_subset_includes_small(tmp_path):
    tree = make_fma(tmp_path, medium=True)
    index = build_index(config(tree, fma_subset="medium"))
    assert index.class_names == ["Folk", "Hip-Hop", "Jazz", "Pop", "Rock"]
    ids = {e.track_id for e in index.entries}
    assert {"000200", "000201", "000002"} <= ids and "000300" not in ids
    assert all(e.relative.startswith("fma_medium/") for e in index.entries)
    # The small subset is read from fma_medium/ when fma_small/ is absent (medium holds it).
    assert {e.track_id for e in build_index(config(tree)).entries} == {f"{t[0]:06d}" for t in tree.tracks
                                                                       if t[2] == "small"}


def test_errors(tmp_path):
    tree = make_fma(tmp_path)
    with pytest.raises(UserError, match="unknown --fma_subset"):
        build_index(config(tree, fma_subset="large"))
    with pytest.raises(UserError, match="no fma_medium/ folder"):
        build_index(config(tree, fma_subset="medium"))
    (tmp_path / "fma" / "fma_metadata" / "tracks.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="not FMA's tracks.csv"):
        build_index(config(tree))
