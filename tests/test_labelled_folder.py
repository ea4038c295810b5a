"""Labelled folder: metadata.csv labels stay with their files; broken and missing files are skipped."""
import json

import numpy as np
import pytest

from clmr_lib.data.labelled_folder import LabelledFolder, infer_tasks
from clmr_lib.errors import UserError
from conftest import write_broken_files


@pytest.fixture
def labelled_tree(tmp_path, make_audio_file):
    root = tmp_path / "mine"
    rows = [("a.wav", "train", "rock", "guitar;drums"), ("b.flac", "train", "jazz", "piano"),
            ("c.mp3", "valid", "rock", "guitar"), ("d.ogg", "test", "jazz", "piano;drums"),
            ("e.wav", "test", "rock", "drums")]
    for path, *_ in rows:
        make_audio_file(root / path, seconds=1.0, sample_rate=16000)
    broken = write_broken_files(root / "broken")
    rows.insert(1, ("broken/corrupt.wav", "train", "jazz", "piano"))
    rows.insert(3, ("missing.wav", "train", "rock", "drums"))
    lines = ["path,split,genre,tags"] + [",".join(r) for r in rows]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root, broken


def test_labels_follow_their_files_despite_broken_ones(labelled_tree):
    root, _ = labelled_tree
    genre = LabelledFolder(str(root), task="genre", progress=False)
    assert genre.task_type == "multiclass" and genre.class_names == ["jazz", "rock"]
    train = genre.tracks("train")
    assert [t.track_id for t in train] == ["a.wav", "b.flac"]
    assert [t.label for t in train] == [1, 0]
    assert [t.track_id for t in genre.tracks("test")] == ["d.ogg", "e.wav"]
    skipped = dict(genre.skipped.items())
    assert any(p.endswith("corrupt.wav") for p in skipped) and any(p.endswith("missing.wav") for p in skipped)

    tags = LabelledFolder(str(root), task="tags", progress=False)
    assert tags.task_type == "multilabel" and tags.class_names == ["drums", "guitar", "piano"]
    a = tags.tracks("train")[0]
    np.testing.assert_array_equal(a.label, [1, 1, 0])
    np.testing.assert_array_equal(a.label_array(3), [1, 1, 0])


def test_malformed_metadata_rows_are_skipped_and_reported_not_shifted(labelled_tree, make_audio_file):
    root, _ = labelled_tree
    make_audio_file(root / "f.wav", seconds=1.0, sample_rate=16000)
    make_audio_file(root / "g.wav", seconds=1.0, sample_rate=16000)
    with open(root / "metadata.csv", "a") as handle:
        handle.write("f.wav,train,rock,guitar,drums\n")  # an unquoted comma: 5 fields, the header has 4
        handle.write("g.wav,train\n")  # fields missing: no label
    genre = LabelledFolder(str(root), task="genre", progress=False)
    assert [t.track_id for t in genre.tracks("train")] == ["a.wav", "b.flac"]
    skipped = dict(genre.skipped.items())
    assert "line 9: 5 fields where the header has 4" in skipped[str((root / "f.wav").resolve())]
    assert "line 10: no valid 'genre' label" in skipped[str((root / "g.wav").resolve())]
    # The malformed row's values do not invent classes or tags either.
    assert LabelledFolder(str(root), task="tags", progress=False).class_names == ["drums", "guitar", "piano"]


def test_dataset_json_describes_tasks(labelled_tree):
    root, _ = labelled_tree
    spec = {"tasks": {"genre": {"type": "multiclass", "column": "genre", "classes": ["rock", "jazz", "blues"]}}}
    (root / "dataset.json").write_text(json.dumps(spec))
    data = LabelledFolder(str(root), progress=False)
    assert data.task == "genre" and data.class_names == ["rock", "jazz", "blues"]
    assert data.tracks("train")[0].label == 0


def test_errors(tmp_path, labelled_tree):
    root, _ = labelled_tree
    with pytest.raises(UserError, match="unknown task 'mood'"):
        LabelledFolder(str(root), task="mood", progress=False)
    with pytest.raises(UserError, match="does not exist"):
        LabelledFolder(str(tmp_path / "nope"), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="metadata.csv"):
        LabelledFolder(str(tmp_path / "empty"), progress=False)
    with pytest.raises(UserError, match="unknown split"):
        LabelledFolder(str(root), progress=False).tracks("dev")


def test_infer_tasks_single_and_multi():
    rows = [{"path": "x", "split": "train", "mood": "happy", "instruments": "a;b"}]
    tasks = infer_tasks(rows)
    assert tasks["mood"]["type"] == "multiclass" and tasks["instruments"]["type"] == "multilabel"
