"""Classical probes: every probe on easy data, full class lists, multi-label, validation grid search, seeds."""
import numpy as np
import pytest

from clmr_lib.evaluation.sklearn_probes import SKLEARN_PROBES, fit_sklearn_probe, smallest_class, subsample


def _tracks(n_tracks, n_chunks, seed, n_classes=3, multilabel=False):
    """Chunk embeddings whose first dimensions encode the labels, plus per-track chunk lists."""
    rng = np.random.default_rng(seed)
    if multilabel:
        labels = (rng.random((n_tracks, n_classes)) < 0.4).astype(np.float32)
    else:
        labels = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, n_tracks)]
    tracks = [rng.normal(size=(n_chunks, 6)).astype(np.float32) * 0.3 for _ in range(n_tracks)]
    for emb, label in zip(tracks, labels):
        emb[:, :n_classes] += 2.0 * label
    return tracks, labels


def _chunks(tracks, labels):
    return np.concatenate(tracks), np.concatenate([np.repeat(l[None], len(t), 0) for t, l in zip(tracks, labels)])


@pytest.mark.parametrize("name", sorted(SKLEARN_PROBES))
def test_every_probe_learns_an_easy_single_label_task(name):
    train, valid, test = _tracks(60, 3, 0), _tracks(15, 3, 1), _tracks(30, 3, 2)
    probe = fit_sklearn_probe(name, _chunks(*train), valid, "multiclass", ["a", "b", "c"], seed=0)
    scores = np.stack([probe.predict_proba(t).mean(0) for t in test[0]])
    assert scores.shape == (30, 3) and np.allclose(scores.sum(1), 1)
    assert np.mean(scores.argmax(1) == test[1].argmax(1)) >= 0.9
    assert probe.params in [g["params"] for g in probe.grid]
    assert len(probe.grid) == np.prod([len(values) for values in SKLEARN_PROBES[name][1].values()])


@pytest.mark.parametrize("name", sorted(SKLEARN_PROBES))
def test_multilabel_probes_give_one_probability_per_tag_even_for_a_tag_never_seen(name):
    (tracks, labels), valid = _tracks(40, 2, 0, multilabel=True), _tracks(10, 2, 1, multilabel=True)
    labels[:, 2] = 0  # tag "c" never occurs in training
    probe = fit_sklearn_probe(name, _chunks(tracks, labels), valid, "multilabel", ["a", "b", "c"], seed=0)
    out = probe.predict_proba(valid[0][0])
    assert out.shape == (2, 3) and np.all((out >= 0) & (out <= 1))
    assert np.all(out[:, 2] < 0.5)


def test_a_class_missing_from_training_gets_probability_zero():
    tracks, labels = _tracks(30, 2, 0)
    labels = np.eye(4, dtype=np.float32)[labels.argmax(1)]  # a fourth class that never occurs
    probe = fit_sklearn_probe("logreg", _chunks(tracks, labels), None, "multiclass", list("abcd"), seed=0)
    out = probe.predict_proba(tracks[0])
    assert out.shape == (2, 4) and np.all(out[:, 3] == 0) and probe.grid[0]["valid"] is None


def test_grid_search_is_scored_on_the_validation_tracks_and_reproducible():
    train, valid = _tracks(20, 2, 0), _tracks(8, 2, 1)
    a = fit_sklearn_probe("rf", _chunks(*train), valid, "multiclass", ["a", "b", "c"], seed=3)
    b = fit_sklearn_probe("rf", _chunks(*train), valid, "multiclass", ["a", "b", "c"], seed=3)
    assert all(set(g["valid"]) == {"accuracy", "top3_accuracy"} for g in a.grid)
    np.testing.assert_array_equal(a.predict_proba(valid[0][0]), b.predict_proba(valid[0][0]))


def test_multilayer_chunks_are_averaged_over_layers():
    tracks, labels = _tracks(30, 2, 0)
    layered = [np.stack([t, t], axis=1) for t in tracks]  # (chunks, 2 layers, dim)
    probe = fit_sklearn_probe("knn", _chunks(layered, labels), None, "multiclass", ["a", "b", "c"], seed=0)
    np.testing.assert_allclose(probe.predict_proba(layered[0]), probe.predict_proba(tracks[0]))


def test_subsample_is_seeded_and_keeps_order():
    x, y = np.arange(100)[:, None], np.arange(100)[:, None]
    a, _ = subsample(x, y, 10, seed=1)
    b, _ = subsample(x, y, 10, seed=1)
    assert len(a) == 10 and np.array_equal(a, b) and np.all(np.diff(a[:, 0]) > 0)
    assert subsample(x, y, None, 0)[0] is x


@pytest.mark.parametrize("task_type", ["multiclass", "multilabel"])
@pytest.mark.parametrize("rare", [1, 2])
def test_svm_survives_classes_too_rare_for_platt_folds(task_type, rare):
    # A class (or a tag) with only `rare` training chunks: 3-fold Platt scaling cannot split it.
    rng = np.random.default_rng(0)
    n = 40
    if task_type == "multiclass":
        y = np.eye(3, dtype=np.float32)[np.r_[np.zeros(n // 2, int), np.ones(n // 2 - rare, int), np.full(rare, 2)]]
    else:
        y = np.zeros((n, 2), dtype=np.float32)
        y[: n // 2, 0] = 1
        y[:rare, 1] = 1
    x = rng.normal(size=(n, 6)).astype(np.float32) * 0.3 + y.argmax(1)[:, None] * np.ones(6) * (task_type == "multiclass")
    x[:, 0] += 3 * y[:, 0]
    assert smallest_class(y, task_type) == rare
    valid = ([x[i:i + 2] for i in range(0, n, 2)], y[::2])
    probe = fit_sklearn_probe("svm", (x, y), valid, task_type, ["a", "b", "c"][: y.shape[1]], seed=0)
    proba = probe.predict_proba(x)
    assert proba.shape == (n, y.shape[1]) and np.all((proba >= 0) & (proba <= 1))
    # Still a useful classifier of the frequent class.
    assert np.mean((proba[:, 0] > 0.5) == (y[:, 0] > 0.5)) > 0.8 if task_type == "multilabel" else \
        np.mean(proba.argmax(1)[: n // 2] == 0) > 0.8
