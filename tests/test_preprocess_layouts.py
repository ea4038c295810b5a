"""Every dataset layout through preprocess.py: interrupted, resumed, faults left out, same tracks and labels after."""
import os

import numpy as np
import pytest

from clmr_lib.data import get_dataset
from clmr_lib.data.processed import processed_dir
from clmr_lib.preprocessing import convert as convert_module
from clmr_lib.preprocessing.pipeline import run_preprocessing
from fixtures.fake_datasets import (make_artist20, make_artist20_course, make_fma, make_gtzan, make_magnatagatune,
                                    make_msd)

RATE = 16000
LAYOUTS = {  # name: (builder, dataset, extra config)
    "magnatagatune": (make_magnatagatune, "magnatagatune", {"mtt_split": "pons2017"}),
    "gtzan": (make_gtzan, "gtzan", {}),
    "fma_small": (make_fma, "fma", {"fma_subset": "small"}),
    "artist20_album": (make_artist20, "artist20", {"artist20_layout": "auto"}),
    "artist20_course": (make_artist20_course, "artist20", {"artist20_layout": "auto"}),
    "msd": (make_msd, "msd", {}),
}


def snapshot(dataset):
    """Per split, each track's id and label: what must not change when the files are converted."""
    return {split: [(t.track_id, None if t.label is None else np.asarray(t.label).tolist())
                    for t in dataset.tracks(split)] for split in ("train", "valid", "test")}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_interrupted_preprocessing_resumes_and_changes_no_track_or_label(layout, tmp_path, monkeypatch):
    builder, name, extra = LAYOUTS[layout]
    tree = builder(tmp_path)
    config = {"dataset": name, "dataset_dir": tree.dataset_dir, "sample_rate": RATE, "audio_length": 32000,
              "pad_short": True, "workers": 1, "progress": False, "task": "", "processed_format": "wav", **extra}
    originals = get_dataset(dict(config, use_processed=False))
    expected, left_out = snapshot(originals), {path for path, _ in originals.skipped}
    usable = {t.path for split in ("train", "valid", "test") for t in originals.tracks(split)}
    assert usable and left_out

    real, done = convert_module.convert_file, []

    def interrupted(source, destination, *args):
        if len(done) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third file converts
        result = real(source, destination, *args)
        done.append(result["status"])
        return result

    monkeypatch.setattr(convert_module, "convert_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_preprocessing(config)
    monkeypatch.setattr(convert_module, "convert_file", real)
    report = run_preprocessing(config)
    converted_before = done.count("ok")
    assert report.skipped == converted_before and report.converted + report.skipped == len(usable)
    # Everything the dataset leaves out when read from the originals is what preprocessing failed or excluded.
    assert {f["path"] for f in report.to_json()["failed"]} | {f["path"] for f in report.to_json()["excluded"]} \
        == left_out

    converted = get_dataset(config)
    assert converted.processed == len(usable)
    assert snapshot(converted) == expected
    assert {path for path, _ in converted.skipped} == left_out
    folder = processed_dir(converted.root, RATE)
    assert all(t.path.startswith(folder + os.sep) for s in ("train", "valid", "test") for t in converted.tracks(s))
    assert not [n for _, _, files in os.walk(folder) for n in files if ".tmp" in n]
