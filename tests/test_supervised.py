"""Supervised SampleCNN baseline: trains end to end, saves a loadable checkpoint, is reused, head = model."""
import lightning as L
import numpy as np
import pytest
import torch
from conftest import write_audio_file

from clmr_lib.checkpoints import load_encoder, safe_load
from clmr_lib.config import load_config
from clmr_lib.data import get_dataset
from clmr_lib.training.supervised import EndToEndHead, SupervisedLearning, model_path, train_supervised

TINY = {"sample_rate": 16000, "audio_length": 729, "sample_cnn_channels": [8, 8, 8, 8, 8, 8, 16],
        "sample_cnn_strides": [3, 3, 3, 3, 3], "workers": 0, "progress": False, "supervised_max_epochs": 3,
        "supervised_batch_size": 8}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("supervised")
    root = tmp_path / "tones"
    rows = ["path,split,pitch"]
    for i in range(18):
        split = ["train", "train", "train", "valid", "test", "train"][i % 6]
        write_audio_file(root / f"{i:02d}.wav", seconds=0.2, sample_rate=16000, frequency=[200, 2000][i % 2])
        rows.append(f"{i:02d}.wav,{split},{['low', 'high'][i % 2]}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    out = load_config()
    out.update(TINY, dataset="folder", dataset_dir=str(root), log_dir=str(tmp_path / "runs"), task="pitch")
    return out


@pytest.fixture(scope="module")
def trained(config):
    """The model trained once for the module (later calls reuse the saved checkpoint)."""
    dataset = get_dataset(config)
    return (dataset, *train_supervised(config, dataset, progress=False))


def test_trains_saves_a_checkpoint_load_encoder_reads_and_reuses_it(config, trained, monkeypatch):
    dataset, path, curves = trained
    assert path == model_path(config, dataset) and path.is_file()
    assert len(curves["epochs"]) == 3 and all("valid_loss" in e for e in curves["epochs"])
    encoder = load_encoder(path)
    assert encoder.embedding_dim == 16 and encoder.sample_rate == 16000 and not encoder.training

    def no_training(*args, **kwargs):
        raise AssertionError("the saved model should have been reused")

    monkeypatch.setattr(L.Trainer, "fit", no_training)
    assert train_supervised(config, dataset, progress=False)[0] == path
    assert model_path(dict(config, supervised_learning_rate=0.1), dataset) != path
    assert model_path(dict(config, seed=7), dataset) != path


def test_end_to_end_head_on_embeddings_equals_the_model_in_eval_mode(trained):
    _, path, _ = trained
    saved = safe_load(path)
    module = SupervisedLearning(2, "multiclass", saved["hyper_parameters"]["encoder_kwargs"])
    module.load_state_dict(saved["state_dict"])
    module.eval()
    x = torch.randn(4, 729)
    with torch.no_grad():
        expected = torch.softmax(module(x), dim=-1).numpy()
        embeddings = load_encoder(path)(x).numpy()
    np.testing.assert_allclose(EndToEndHead.from_checkpoint(path).predict_proba(embeddings), expected, atol=1e-6)


def test_training_is_reproducible_with_a_seed(config, trained, tmp_path):
    dataset, a, _ = trained
    b, _ = train_supervised(dict(config, log_dir=str(tmp_path / "b")), dataset, progress=False)
    assert a != b
    sa, sb = safe_load(a)["state_dict"], safe_load(b)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
