"""Metrics: against hand-computed values."""
import numpy as np
import pytest

from clmr_lib.evaluation.metrics import multiclass_metrics, multilabel_metrics, top_k_accuracy


def test_multilabel_perfect_and_hand_computed_auc():
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.4], [0.1, 0.5]])
    result = multilabel_metrics(targets, scores, ["a", "b"])
    # tag a: positives 0.9, 0.3 vs negatives 0.2, 0.1 -> all pairs ordered -> 1.0
    # tag b: positive 0.8 vs negatives 0.1, 0.4, 0.5 -> 1.0
    assert result["per_tag"]["a"]["roc_auc"] == 1.0 and result["roc_auc"] == 1.0
    scores[2, 0] = 0.15  # one positive now below one negative: 3 of 4 pairs ordered
    assert multilabel_metrics(targets, scores, ["a", "b"])["per_tag"]["a"]["roc_auc"] == pytest.approx(0.75)


def test_multilabel_undefined_tags_excluded():
    targets = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.random.default_rng(0).random((3, 2))
    result = multilabel_metrics(targets, scores, ["a", "never"])
    assert result["undefined_tags"] == ["never"] and list(result["per_tag"]) == ["a"]


def test_multiclass_accuracy_top3_f1_confusion():
    labels = np.array([0, 1, 2, 3])
    scores = np.array([[0.7, 0.1, 0.1, 0.1],   # right
                       [0.5, 0.4, 0.05, 0.05],  # wrong, 2nd
                       [0.1, 0.2, 0.3, 0.4],    # wrong, 2nd
                       [0.4, 0.3, 0.2, 0.1]])   # wrong, 4th
    result = multiclass_metrics(labels, scores, ["a", "b", "c", "d"])
    assert result["accuracy"] == 0.25
    assert result["top3_accuracy"] == 0.75
    assert np.array(result["confusion_matrix"]).sum() == 4 and result["confusion_matrix"][1][0] == 1
    # class a: precision 1/3, recall 1 -> F1 0.5; the others have no true positive
    assert result["macro_f1"] == pytest.approx(0.5 / 4)
    assert top_k_accuracy(labels, scores, 10) == 1.0


def test_macro_f1_and_top3_agree_with_scikit_learn_recomputed_from_predictions():
    from sklearn.metrics import f1_score, top_k_accuracy_score

    # Class "d" has no test track and is never predicted: like scikit-learn, it is not averaged in.
    labels = np.array([0, 0, 1, 2, 2, 1])
    scores = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.1, 0.7, 0.1, 0.1],
                       [0.2, 0.2, 0.5, 0.1], [0.5, 0.1, 0.3, 0.1], [0.3, 0.3, 0.3, 0.1]])
    result = multiclass_metrics(labels, scores, ["a", "b", "c", "d"])
    assert result["macro_f1"] == pytest.approx(f1_score(labels, scores.argmax(1), average="macro"))
    assert result["macro_f1"] > f1_score(labels, scores.argmax(1), average="macro", labels=range(4), zero_division=0)
    # Ties (the last row: a, b, c level, truth b) are broken towards the lower class index, as
    # argmax does: b is not in the top 1 but is in the top 2.
    assert top_k_accuracy(labels[-1:], scores[-1:], 1) == 0.0 and top_k_accuracy(labels[-1:], scores[-1:], 2) == 1.0
    assert top_k_accuracy(labels, scores, 1) == pytest.approx(result["accuracy"])
    untied = scores[:5]  # scikit-learn breaks ties its own way: compare where there are none in the top 2
    assert top_k_accuracy(labels[:5], untied, 2) == pytest.approx(top_k_accuracy_score(labels[:5], untied, k=2,
                                                                                        labels=range(4)))


def test_task_metrics_dispatches_on_the_task_type():
    from clmr_lib.evaluation.metrics import TABLE_METRICS, task_metrics

    onehot = np.eye(3)[[0, 1, 2, 2]]
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    single = task_metrics("multiclass", onehot, scores, ["a", "b", "c"])
    assert single["accuracy"] == 0.75 and set(TABLE_METRICS["multiclass"]) <= set(single)
    multi = task_metrics("multilabel", onehot, scores, ["a", "b", "c"])
    assert set(TABLE_METRICS["multilabel"]) <= set(multi) and "per_tag" in multi
