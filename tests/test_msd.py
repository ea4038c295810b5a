"""MSD: CLMR's split and label files, index paths or 7digital paths via a plain pickle, faults skipped."""
import pickle

import numpy as np
import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.msd import build_index, read_id_map
from clmr_lib.errors import UserError
from fixtures.fake_datasets import make_msd


def config(tree, **extra):
    base = {"dataset": "msd", "dataset_dir": tree.dataset_dir, "sample_rate": 22050, "audio_length": 59049,
            "pad_short": True, "workers": 0, "progress": False, "task": ""}
    return {**base, **extra}


@pytest.mark.parametrize("seven_digital", [False, True])
def test_tracks_labels_and_faults(tmp_path, seven_digital):
    tree = make_msd(tmp_path, seven_digital=seven_digital)
    data = get_dataset(config(tree))
    assert data.task_type == "multilabel" and len(data.class_names) == 50 and data.class_names[0] == "rock"
    found = {}
    for split in ("train", "valid", "test"):
        for track in data.tracks(split):
            found[track.track_id] = split
            np.testing.assert_array_equal(track.label, tree.labels[track.track_id])
            assert track.path == tree.paths[track.track_id]
    assert found == tree.good
    assert set(dict(data.skipped.items())) == set(tree.faults)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "MSD_id_to_7D_id.pkl"
    path.write_bytes(pickle.dumps({"TR": np.int64(3)}))
    with pytest.raises(UserError, match="cannot read"):
        read_id_map(str(path))


def test_missing_split_file(tmp_path):
    tree = make_msd(tmp_path)
    (tmp_path / "msd" / "processed_annotations" / "val_gt_msd.tsv").unlink()
    with pytest.raises(UserError, match="val_gt_msd.tsv not found"):
        build_index(config(tree))
