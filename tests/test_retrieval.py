"""Retrieval recall@K: hand-computed multi-label and single-label cases."""
import numpy as np
import pytest

from clmr_lib.evaluation.retrieval import nearest_neighbours, recall_at_k

# Four tracks on a circle: 0 and 1 close together, 2 and 3 close together, the pairs opposite.
EMBEDDINGS = np.array([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.05], [-0.9, -0.1]])


def test_neighbours_exclude_the_query_and_rank_by_cosine():
    neighbours = nearest_neighbours(EMBEDDINGS, 3)
    assert neighbours[0].tolist()[0] == 1 and neighbours[2].tolist()[0] == 3
    assert all(i not in row for i, row in enumerate(neighbours))
    # Cosine ignores length: scaling a track changes nothing.
    np.testing.assert_array_equal(nearest_neighbours(EMBEDDINGS * [[3], [1], [0.5], [2]], 3), neighbours)


def test_multilabel_recall_is_the_fraction_of_query_labels_found_among_the_neighbours():
    labels = np.array([[1, 1, 0],   # track 0: tags a, b
                       [1, 0, 0],   # track 1: a
                       [0, 1, 1],   # track 2: b, c
                       [0, 0, 1]])  # track 3: c
    result = recall_at_k(EMBEDDINGS, labels, ks=(1, 2, 3))
    # K=1: 0 -> 1 finds {a} of {a,b}: 1/2; 1 -> 0 finds a: 1; 2 -> 3 finds c of {b,c}: 1/2; 3 -> 2: 1
    assert result["recall@1"] == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)
    # K=3: everyone else is retrieved; every label of every query occurs in another track
    assert result["recall@3"] == pytest.approx(1.0)
    assert result["queries"] == 4


def test_single_label_recall_is_a_hit_when_any_neighbour_shares_the_class():
    labels = np.eye(2)[[0, 1, 1, 0]]
    # Rankings by cosine: 0: 1, 3, 2; 1: 0, 2, 3; 2: 3, 1, 0; 3: 2, 0, 1.
    assert nearest_neighbours(EMBEDDINGS, 3).tolist() == [[1, 3, 2], [0, 2, 3], [3, 1, 0], [2, 0, 1]]
    result = recall_at_k(EMBEDDINGS, labels, ks=(1, 2))
    # K=1: every nearest neighbour has the other class; K=2: every second neighbour shares it.
    assert result["recall@1"] == 0.0 and result["recall@2"] == 1.0


def test_unlabelled_queries_are_skipped_and_large_k_is_clipped():
    labels = np.array([[1, 0], [0, 0], [1, 0]])
    result = recall_at_k(EMBEDDINGS[:3], labels, ks=(1, 8))
    assert result["queries"] == 2 and result["recall@8"] == 1.0
    assert np.isnan(recall_at_k(EMBEDDINGS[:1], labels[:1])["recall@1"])
