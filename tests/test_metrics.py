"""metrics: the numbers every experiment reports, checked on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bertology.metrics import (classification_scores, cosine_matrix, qa_scores, random_mrr, ranking_scores,
                               retrieval_ranks, sense_separation, squad_em, squad_f1, unit_rows)


def test_cosine_and_sense_separation():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert cosine_matrix(x) == pytest.approx(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]))
    s = sense_separation(x, ["a", "a", "b", "b"])
    assert (s["within"], s["between"], s["separation"], s["purity"]) == pytest.approx((1.0, 0.0, 1.0, 1.0))
    # a static embedding: every occurrence the same vector, so nothing separates
    same = sense_separation(np.ones((4, 3)), ["a", "a", "b", "b"])
    assert same["separation"] == pytest.approx(0.0) and same["silhouette"] is None and same["purity"] == 0.5
    assert sense_separation(x, ["a"] * 4)["separation"] is None       # one label: nothing to separate


def test_classification_counts_missing_classes():
    s = classification_scores([0, 0, 1, 1], [0, 0, 1, 0], labels=[0, 1, 2])
    assert s["accuracy"] == 0.75 and s["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)


def test_squad_scores():
    assert squad_em("The Cat!", "cat") == 1.0 and squad_f1("a black cat", "the cat") == pytest.approx(2 / 3)
    s = qa_scores({"q1": ["cat"], "q2": ["dog", "a hound"]}, {"q1": "cat"}, "en")
    assert s["exact_match"] == 50.0 and s["total"] == 2 and s["missing"] == 1


def test_retrieval_ranks_and_mrr():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    c = np.array([[0.0, 1.0], [1.0, 0.1], [0.7, 0.7]])
    ranks = retrieval_ranks(q, c, [[1], [0]])
    assert list(ranks) == [1, 1]
    assert ranking_scores([1, 2, 4]) == pytest.approx({"mrr": (1 + 0.5 + 0.25) / 3, "p_at_1": 1 / 3,
                                                       "p_at_5": 1.0, "n": 3})
    assert np.isnan(ranking_scores([])["mrr"])
    # one gold among m candidates: E[1/rank] = H_m / m
    assert random_mrr([1], 4) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert random_mrr([4], 4) == pytest.approx(1.0)
    assert float(unit_rows(np.array([[3.0, 4.0]])).norm()) == pytest.approx(1.0)


def test_group_vote_and_mcnemar_hand_checked():
    from bertology.metrics import group_vote_accuracy, mcnemar_p

    # piece p: voices predict 0, 0, 1 -> 0 (right); piece q: one vote each, 1 has the larger score -> 1 (right);
    # piece r: its one voice predicts 0 but is 1 (wrong)
    scores = [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.6, 0.4], [0.05, 0.95], [0.7, 0.3]]
    y = [0, 0, 0, 1, 1, 1]
    groups = ["p", "p", "p", "q", "q", "r"]
    assert group_vote_accuracy(y, scores, groups) == pytest.approx(2 / 3)
    # 10 examples only A gets right, 0 only B: p = 2 * 0.5**10
    a = [True] * 10 + [True] * 5
    b = [False] * 10 + [True] * 5
    assert mcnemar_p(a, b) == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_p(a, a) == 1.0


def test_cmrc_english_runs_tokenised_as_nltk():
    """The official CMRC 2018 script tokenises the non-Chinese runs with nltk.word_tokenize: "NaBO.10H" is one
    token there (a regex splitting at the period made CMRC dev F1 62.54 instead of the official 62.516 on a
    3,219-question prediction file; with nltk every question agrees, see docs/qa.md)."""
    from bertology.metrics import cmrc_f1, cmrc_segment

    assert cmrc_segment("分子式NaBO.10H") == ["分", "子", "式", "nabo.10h"]
    assert cmrc_segment("don't stop") == ["do", "n't", "stop"]
    # prediction nabo.10h 晶 体, reference nabo.10h 晶 体 水: common run 3, P = 1, R = 3/4, F1 = 6/7
    assert cmrc_f1("NaBO.10H 晶体", "NaBO.10H 晶体 水") == pytest.approx(6 / 7)


@pytest.mark.parametrize("m", [1000, 1007, 45])     # divisible by the 16 buckets, a leftover tail, too few
def test_top_k_by_buckets_is_exactly_topk(m):
    """The bucket screen gives the same values in the same order as a full topk (so CSLS radii are bitwise the
    same), also with ties at the k-th value (scores rounded to a few levels) and the k-th best in the tail."""
    import torch

    from bertology.metrics import top_k_by_buckets

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, m, generator=g)
    tied = (scores * 2).round() / 2                                    # ~10 levels: many ties at the k-th value
    tail = scores.clone()
    tail[:, -1] = 10.0                                                 # the best value in the leftover columns
    for s in (scores, tied, tail, scores[:, : m - 1]):                  # also a non-contiguous slice
        for k in (1, 10):
            assert torch.equal(top_k_by_buckets(s, k), s.topk(k, dim=1).values), (m, k)


def test_csls_radii_and_ranks_unchanged_by_the_fp32_screen(monkeypatch):
    """knn_mean_similarity without the bf16 screen (this CPU) gives bitwise the radii of a plain topk."""
    import torch

    from bertology import metrics

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 24)).astype(np.float32), rng.normal(size=(2000, 24)).astype(np.float32)
    screened = metrics.knn_mean_similarity(a, b, k=10, screen=False)
    plain = (torch.as_tensor(unit_rows(a)) @ torch.as_tensor(unit_rows(b)).T).topk(10, dim=1).values.mean(1)
    assert np.array_equal(screened, plain.numpy())
    gold = [[i % 2000] for i in range(300)]
    ranks = retrieval_ranks(a, b, gold, "csls")
    monkeypatch.setattr(metrics, "top_k_by_buckets", lambda s, k: s.topk(k, dim=1).values)
    assert np.array_equal(ranks, retrieval_ranks(a, b, gold, "csls"))
