"""GTZAN: the shipped fault-filtered split, .wav and .au clips, faults skipped without shifting labels."""
import json

import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.gtzan import GENRES, build_index, filtered_split
from clmr_lib.errors import UserError
from fixtures.fake_datasets import make_gtzan


def config(tree, **extra):
    base = {"dataset": "gtzan", "dataset_dir": tree.dataset_dir, "sample_rate": 22050, "audio_length": 59049,
            "pad_short": True, "workers": 0, "progress": False, "task": ""}
    return {**base, **extra}


def test_shipped_filtered_split_counts():
    pairs = filtered_split()
    counts = {s: sum(1 for _, split in pairs if split == s) for s in ("train", "valid", "test")}
    assert counts == {"train": 443, "valid": 197, "test": 290}
    assert len({t for t, _ in pairs}) == 930
    assert {t.split(".")[0] for t, _ in pairs} == set(GENRES)


def test_tracks_labels_and_faults(tmp_path):
    tree = make_gtzan(tmp_path)
    data = get_dataset(config(tree))
    assert data.task_type == "multiclass" and data.class_names == list(GENRES) and data.task == "genre"
    found = {t.track_id: (split, t) for split in ("train", "valid", "test") for t in data.tracks(split)}
    assert set(found) == set(tree.good) | tree.short
    for track_id, (split, track) in found.items():
        assert split == tree.files[track_id][0]
        assert data.class_names[track.label] == track_id.split(".")[0]
    assert found["rock.00001"][1].path.endswith("rock.00001.au")
    skipped = dict(data.skipped.items())
    for path, kind in tree.faults.items():
        if kind != "short":
            assert kind in skipped[path].lower()
    # Every other clip of the split is listed but absent from this partial copy.
    assert len(skipped) == 930 - len(found)
    missing = [r for p, r in skipped.items() if "blues.00030" in p]
    assert missing == ["listed in the GTZAN filtered split but the file is missing"]


def test_dataset_dir_may_be_the_genres_folder(tmp_path):
    tree = make_gtzan(tmp_path)
    index = build_index({"dataset_dir": f"{tree.root}/genres", "task": ""})
    assert index.root == tree.root and index.entries[0].relative == "genres/blues/blues.00029.wav"


def test_genres_folder_required(tmp_path):
    (tmp_path / "gtzan").mkdir()
    with pytest.raises(UserError, match="dataset not found"):
        build_index({"dataset_dir": str(tmp_path), "task": ""})


def test_evaluation_names_the_split_next_to_every_metric(tmp_path):
    from clmr_lib.config import load_config
    from clmr_lib.evaluation.linear_evaluation import run_linear_evaluation

    tree = make_gtzan(tmp_path)
    cfg = load_config()
    cfg.update(config(tree), dataset="gtzan", checkpoint_path="random", output_dir=str(tmp_path / "eval"),
               log_dir=str(tmp_path / "runs"), sample_rate=16000, audio_length=729, workers=0, progress=False,
               plots=False, probes="knn", sample_cnn_channels=[8, 8, 8, 8, 8, 8, 16],
               sample_cnn_strides=[3, 3, 3, 3, 3])
    summary = run_linear_evaluation(cfg)
    assert summary["table"].splitlines()[0].startswith("gtzan (fault-filtered split)/genre: ")
    saved = json.loads(open(summary["path"]).read())
    assert saved["variant"] == "fault-filtered split"
    assert all(r["variant"] == "fault-filtered split" for r in saved["results"] + saved["retrieval"])
