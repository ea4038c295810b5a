"""Lightning probes: frozen encoders stay frozen, layer weighting, curves, best-epoch weights, reproducibility."""
import copy

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clmr_lib.checkpoints import frozen
from clmr_lib.evaluation.probe import Probe, fit_probe, quiet_lightning, track_predictions
from clmr_lib.models.sample_cnn import SampleCNN

# Lightning notes that the frozen encoder is in eval mode when training starts: that is the point.
pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")

TINY = {"channels": [8, 8, 8, 16], "strides": [3, 3], "sample_rate": 16000, "audio_length": 81}


def _blobs(n=120, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = nn.functional.one_hot((x[:, 0] > 0).long(), 2).float()
    return x, y


class EncoderProbe(L.LightningModule):
    """What a user writes to probe on the fly: a frozen encoder inside the module Lightning trains.

    Lightning < 2.2 called ``.train()`` on the whole module every epoch, and so does any code that
    puts "the model" in training mode; the hook does it explicitly, whatever Lightning version runs.
    """

    def __init__(self, encoder):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(16, 2)

    def on_train_epoch_start(self):
        self.train()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.encoder(x)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.head.parameters(), lr=0.1)


def _train_on_the_fly(encoder) -> dict:
    before = copy.deepcopy(encoder.state_dict())
    audio = torch.randn(16, 81) * 3 + 1  # statistics far from BatchNorm's initial ones
    loader = DataLoader(TensorDataset(audio, torch.randint(0, 2, (16,))), batch_size=8)
    with quiet_lightning():
        L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, accelerator="cpu").fit(EncoderProbe(encoder), loader)
    assert not any(p.requires_grad for p in encoder.parameters())
    return before


def test_frozen_encoder_batchnorm_buffers_are_bit_identical_after_lightning_training():
    torch.manual_seed(0)
    encoder = frozen(SampleCNN(**TINY))
    before = _train_on_the_fly(encoder)
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not encoder.training


def test_without_freezing_lightning_train_mode_changes_batchnorm_statistics():
    # The control that gives the test above its teeth: requires_grad=False alone is not frozen.
    torch.manual_seed(0)
    encoder = SampleCNN(**TINY).eval()
    encoder.requires_grad_(False)
    before = _train_on_the_fly(encoder)
    changed = [k for k in before if "running_mean" in k and not torch.equal(before[k], encoder.state_dict()[k])]
    assert changed


def test_probe_training_is_reproducible():
    x, y = _blobs()
    a = fit_probe((x, y), (x, y), "multiclass", max_epochs=3, seed=1)
    b = fit_probe((x, y), (x, y), "multiclass", max_epochs=3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_history_records_both_losses_and_the_best_epoch_weights_are_kept():
    x, y = _blobs()
    probe = fit_probe((x, y), (x[:40], y[:40]), "multiclass", max_epochs=6, seed=0)
    epochs = probe.history["epochs"]
    assert len(epochs) == 6 and all({"train_loss", "valid_loss"} <= set(e) for e in epochs)
    best = min(range(6), key=lambda i: epochs[i]["valid_loss"])
    assert probe.history["best_epoch"] == best
    with torch.no_grad():
        loss = nn.functional.cross_entropy(probe(x[:40]), y[:40].argmax(1)).item()
    assert abs(loss - epochs[best]["valid_loss"]) < 1e-5


def test_probe_without_validation_split_trains_all_epochs():
    x, y = _blobs()
    probe = fit_probe((x, y), None, "multilabel", max_epochs=4, seed=0)
    assert len(probe.history["epochs"]) == 4 and probe.history["monitor"] == "train/loss"


def test_multilayer_inputs_learn_a_softmax_weighted_sum_of_layers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, 4, generator=g)
    y = nn.functional.one_hot((x[:, 2, 0] > 0).long(), 2).float()  # only layer 2 is informative
    probe = fit_probe((x, y), (x, y), "multiclass", max_epochs=40, learning_rate=0.05, seed=0)
    weights = probe.layer_weights()
    assert probe.mean.shape == (3, 4) and torch.isclose(weights.sum(), torch.tensor(1.0))
    assert int(weights.argmax()) == 2
    assert probe.predict_proba(x[:5].numpy()).shape == (5, 2)


def test_two_dimensional_inputs_have_no_layer_weights():
    probe = Probe(8, 3, "multiclass")
    assert probe.layer_weights() is None and probe.mean.shape == (8,)


def test_track_predictions_average_chunk_probabilities():
    probe = Probe(2, 2, "multiclass")
    with torch.no_grad():
        probe.model[0].weight.copy_(torch.eye(2))
        probe.model[0].bias.zero_()
    chunks = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=np.float32)
    expected = torch.softmax(torch.from_numpy(chunks), dim=1).mean(0).numpy()
    out = track_predictions(probe, [chunks, None, np.zeros((0, 2), np.float32)])
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    assert out[1] is None and out[2] is None
