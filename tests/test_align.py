"""Cross-lingual alignment, language vectors and their loaders / metrics (issue #6)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bertology.experiments import align
from bertology.experiments import langvec
from bertology.cli import main
from bertology.io.dictionaries import (Dictionary, choose_conversion, convert_dictionary, load_cedict, load_dictionary,
                                       load_muse_dictionary)
from bertology.errors import UserError
from bertology.metrics import bf16_dot_error_bound, knn_mean_similarity, random_mrr, ranking_scores, retrieval_ranks

SENTS = ["i ate an apple today", "the apple company sold a new phone", "he bought a red apple",
         "the cat and the dog", "the dog ate the cat food", "money in the bank", "the bank of the river",
         "we read a book today", "she sells music", "我 今 天 買 了 蘋 果", "他 是 中 國 人", "我 們 在 大 學"]
WORDS = "apple cat dog bank book river money phone music today".split()


# --------------------------------------------------------------------------------------------- metrics
def _naive_ranks(q, c, gold, scoring="cosine", k=10):
    """The straightforward definition, one query at a time, with a full sort."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    if scoring == "csls":
        rq = np.array([np.sort(c @ x)[::-1][:k].mean() for x in q])
        rc = np.array([np.sort(q @ y)[::-1][:k].mean() for y in c])
    ranks = []
    for i, x in enumerate(q):
        s = c @ x
        if scoring == "csls":
            s = 2 * s - rq[i] - rc
        order = np.argsort(-s, kind="stable")
        pos = {j: p for p, j in enumerate(order)}
        best = min(gold[i], key=lambda j: pos[j])
        ranks.append(int((s > s[best]).sum()) + 1)
    return np.array(ranks)


@pytest.mark.parametrize("counter", ["numba", "numpy"])
@pytest.mark.parametrize("scoring", ["cosine", "csls"])
def test_chunked_ranks_match_naive_loop(scoring, counter, monkeypatch):
    from bertology import metrics

    if counter == "numpy":                      # the path taken without numba
        monkeypatch.setattr(metrics, "_COUNT_KERNEL", [None])
    else:
        assert metrics._count_kernel() is not None
    rng = np.random.default_rng(1)
    q, c = rng.normal(size=(57, 8)), rng.normal(size=(41, 8))
    gold = [list(rng.choice(41, size=rng.integers(1, 4), replace=False)) for _ in range(57)]
    # chunk_bytes small enough to force many query chunks
    fast = retrieval_ranks(q, c, gold, scoring, csls_k=5, chunk_bytes=4 * 41 * 6)
    assert np.array_equal(fast, _naive_ranks(q, c, gold, scoring, k=5))


def test_ranks_on_a_hand_made_case():
    c = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    q = np.array([[1, 0.1], [0, 1]], dtype=float)
    # q0 is closest to c0, then c2, then c1; q1 equals c1
    assert retrieval_ranks(q, c, [[2], [1]]).tolist() == [2, 1]
    assert retrieval_ranks(q, c, [[1, 2], [0]]).tolist() == [2, 3]
    s = ranking_scores([1, 2, 10])
    assert s["mrr"] == pytest.approx((1 + 0.5 + 0.1) / 3) and s["p_at_1"] == pytest.approx(1 / 3)
    assert s["p_at_5"] == pytest.approx(2 / 3)


def test_random_mrr_is_exact():
    m = 50
    assert random_mrr([1], m) == pytest.approx(sum(1 / r for r in range(1, m + 1)) / m)
    assert random_mrr([m], m) == pytest.approx(1.0)   # every candidate is correct
    rng = np.random.default_rng(0)                    # g = 3: Monte Carlo agrees
    sims = [1 / (rng.choice(m, 3, replace=False).min() + 1) for _ in range(20000)]
    assert random_mrr([3], m) == pytest.approx(np.mean(sims), abs=0.01)


def test_knn_radius():
    a = np.eye(3)
    assert knn_mean_similarity(a, a, k=1).tolist() == pytest.approx([1, 1, 1])
    assert knn_mean_similarity(a, a, k=3).tolist() == pytest.approx([1 / 3] * 3)


def test_bf16_error_bound_holds():
    """The bound that makes the bf16 screen exact: never exceeded, including by adversarial rows (all mass on
    a few coordinates rounded the same way) and by the cosine of a row with itself."""
    rng = np.random.default_rng(0)
    for d in (8, 64, 384):
        bound = bf16_dot_error_bound(d)
        a = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(300, d)), dtype=torch.float32), dim=1)
        worst = torch.full((4, d), 1 + 2.0 ** -9)          # rounds to bf16 with the largest relative error
        worst[:, :2] *= torch.tensor([-1.0, 1.0])
        a = torch.cat([a, torch.nn.functional.normalize(worst, dim=1)])
        err = (a.bfloat16() @ a.bfloat16().T).double() - a.double() @ a.double().T
        assert err.abs().max().item() <= bound


@pytest.mark.parametrize("near_duplicates", [False, True])
def test_bf16_screened_radius_is_exact(near_duplicates):
    """The screened radii equal the fp32 ones (to summation order), also where near-ties force the fall-back."""
    rng = np.random.default_rng(3)
    b = rng.normal(size=(3001, 24)).astype(np.float32)
    if near_duplicates:      # clusters of 100 rows within 1e-4: bf16 cannot tell them apart
        b = np.repeat(b[:30], 100, axis=0) + 1e-4 * rng.normal(size=(3000, 24)).astype(np.float32)
    a = rng.normal(size=(700, 24)).astype(np.float32)
    screened = knn_mean_similarity(a, b, k=7, chunk_bytes=1 << 20, screen=True)
    plain = knn_mean_similarity(a, b, k=7, screen=False)
    assert np.abs(screened - plain).max() < 1e-6


# --------------------------------------------------------------------------------------------- loaders
def test_muse_loader_and_script_conversion(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("apple\t蘋果\napple\t蘋果\nno one\t無人\nme\t我\n", encoding="utf-8")
    d = load_muse_dictionary(p, convert="t2s")
    assert d.pairs == [("apple", "苹果"), ("no one", "无人"), ("me", "我")]
    assert (d.converted_words, d.chinese_words, d.convert) == (2, 3, "t2s")
    assert load_muse_dictionary(p).pairs[0] == ("apple", "蘋果")
    bad = tmp_path / "bad.txt"
    bad.write_text("apple\t蘋果\nbroken line here\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.txt:2"):
        load_muse_dictionary(bad)


def test_cedict_loader_reads_the_zip(tmp_path):
    text = ("# comment\n蘋果 苹果 [ping2 guo3] /apple/\n手機 手机 [shou3 ji1] /cell phone/mobile phone/CL:部/\n"
            "吃 吃 [chi1] /to eat/to consume/\n")
    z = tmp_path / "cedict.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("cedict_ts.u8", text)
    d = load_cedict(z, direction="en-zh")
    assert ("apple", "苹果") in d.pairs and ("eat", "吃") in d.pairs and ("consume", "吃") in d.pairs
    assert not any(s == "cell phone" for s, _ in d.pairs)       # multi-word glosses are not words
    assert ("蘋果", "apple") in load_cedict(z, direction="zh-en", script="traditional").pairs
    bad = tmp_path / "bad.u8"
    bad.write_text("not a cedict line\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.u8:1"):
        load_cedict(bad)


def test_real_muse_dictionary_and_auto_conversion(data_dir):
    d = load_dictionary("muse-en-zh", data_dir=data_dir)
    assert len(d.pairs) > 30000 and ("and", "和") in d.pairs
    simplified = ["我们今天买了很多东西，价格也不贵。"] * 10
    assert choose_conversion(d, (["we bought things"], simplified)) == "t2s"
    conv = convert_dictionary(d, "t2s")
    assert conv.converted_words > 1000 and ("apple", "苹果") in conv.pairs


def test_word_search_whole_words_and_chinese_substrings():
    sents = ["Pineapple is not an apple.", "APPLE shares fell", "今天買了蘋果來吃", "蘋果手機"]
    occ = align.find_word_occurrences(sents, ["apple", "蘋果", "手機"], max_per_word=5)
    assert [(o.sentence, sents[o.sentence][o.start:o.end]) for o in occ["apple"]] == [(0, "apple"), (1, "APPLE")]
    assert [o.sentence for o in occ["蘋果"]] == [2, 3] and [o.sentence for o in occ["手機"]] == [3]
    assert len(align.find_word_occurrences(sents, ["apple"], max_per_word=1)["apple"]) == 1


# --------------------------------------------------------------------------------------------- alignment
def test_model_aligned_with_itself_scores_mrr_one(tiny_model):
    d = Dictionary([(w, w) for w in WORDS])
    r = align.align(str(tiny_model), d, {"en": SENTS, "zh": SENTS}, "en", "zh", k=3, cbow=False, progress=False,
                    keep_identical=True)
    assert r.coverage["source_words"] == len(WORDS) == r.coverage["candidates"]
    for variant in (r.contextual, r.context_free):
        assert [row["mrr"] for row in variant["cosine"]] == [1.0] * (len(r.layers))
    # and the same words against a shuffled dictionary are not all found
    perm = [WORDS[i] for i in np.roll(np.arange(len(WORDS)), 1)]
    r2 = align.align(str(tiny_model), Dictionary(list(zip(WORDS, perm))), {"en": SENTS, "zh": SENTS}, "en", "zh",
                     k=3, cbow=False, context_free=False, progress=False, keep_identical=True)
    assert max(row["mrr"] for row in r2.contextual["cosine"]) < 0.9
    assert r2.baselines["random_expected_mrr"] == pytest.approx(random_mrr([1] * len(WORDS), len(WORDS)))


def test_skipped_words_are_counted_with_reasons(tiny_model):
    d = Dictionary([("apple", "蘋果"), ("straße", "街"), ("no one", "無人"), ("cat", "貓"), ("dog", "手機"),
                    ("river", "大山")])
    zh = ["我今天買了蘋果來吃", "他的手機很新", "他是中國人"]
    r = align.align(str(tiny_model), d, {"en": SENTS, "zh": zh}, "en", "zh", k=2, cbow=True, progress=False)
    sk = r.coverage["skipped"]
    assert sk["source unknown token for this tokenizer"] == 1          # ß is not in the vocabulary
    assert sk["target not in the corpus"] == 1                          # 大山
    assert sk["source not a single word"] == 1                          # "no one"
    assert sk["target unknown token for this tokenizer"] == 1           # 貓 not in the tiny vocabulary
    assert r.coverage["evaluated_pairs"] == 2 and r.coverage["source_words"] == 2
    assert "cbow" in r.baselines and r.baselines["cbow"]["missing_source"] == 0


def test_alignment_evaluator_leaves_the_training_model_alone(tiny_model, tmp_path):
    from transformers import AutoTokenizer, BertForMaskedLM

    from bertology.io.bilingual import read_bilingual

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = BertForMaskedLM.from_pretrained(tiny_model).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = tmp_path / "identity.txt"
    d.write_text("".join(f"{w}\t{w}\n" for w in WORDS), encoding="utf-8")
    corpus = _corpus(tmp_path)
    data = read_bilingual([f"en={corpus}", f"zh={corpus}"], str(d), convert="none")
    evaluator = align.AlignmentEvaluator(data, tok, k=2, keep_identical=True)
    out = evaluator(model, 10, {})
    assert out["mrr"] == 1.0 and out["mrr_best"] == 1.0 and out["mrr_pairs"] == len(WORDS)
    assert 0 < out["mrr_random"] < 1 and "mrr_l0" in out and "mrr_l2" in out
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32


def test_align_and_the_training_hook_measure_the_same(tiny_model, tmp_path):
    """One evaluator behind both: `align` on a saved model and the pretraining hook (`pretrain
    --track-alignment`'s AlignmentTracker) on the same weights in memory, in training mode, give the same MRR at
    every layer, on a dictionary that is not the identity (so the numbers are not all 1)."""
    from transformers import BertForMaskedLM

    corpus = _corpus(tmp_path)
    d = tmp_path / "shifted.txt"
    d.write_text("".join(f"{a}\t{b}\n" for a, b in zip(WORDS, WORDS[1:] + WORDS[:1])), encoding="utf-8")
    tracker = align.AlignmentTracker(d, [f"en={corpus}", f"zh={corpus}"], tmp_path / "run", tokenizer=str(tiny_model))
    hook = tracker(BertForMaskedLM.from_pretrained(tiny_model).train(), 3, {})
    data = tracker.evaluator.data
    r = align.align(str(tiny_model), data.dictionary, data.corpora, "en", "zh", k=3, max_words=300,
                    max_candidates=2000, max_length=48, batch_size=32, cbow=False, context_free=False,
                    progress=False)
    mrrs = [row["mrr"] for row in r.contextual["cosine"]]
    assert [hook[f"mrr_l{layer}"] for layer in r.layers] == mrrs and len(set(mrrs)) > 1
    assert hook["mrr_random"] == r.baselines["random_expected_mrr"] and hook["mrr"] < 1
    assert hook["mrr_pairs"] == r.coverage["evaluated_pairs"] == len(WORDS)


# --------------------------------------------------------------------------------------------- language vectors
def test_translation_shift_and_scoring(tiny_model):
    from transformers import AutoTokenizer, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(tiny_model)
    mlm = BertForMaskedLM.from_pretrained(tiny_model).eval()
    sents = ["i ate an apple today", "no one is here"]
    plain = langvec.translate(mlm, tok, sents, 1, None)
    zero = langvec.translate(mlm, tok, sents, 1, np.zeros(mlm.config.hidden_size, dtype=np.float32))
    assert plain == zero and [t for t, _ in plain[0]] == ["i", "ate", "an", "apple", "today"]
    big = langvec.translate(mlm, tok, sents, 1, 50 * np.ones(mlm.config.hidden_size, dtype=np.float32))
    assert big != plain                                   # the shift reaches the output
    outs = [[("no", "無"), ("one", "人"), ("me", "you")], [("apple", "蘋"), ("ap", "x"), ("##ple", "y")]]
    s = langvec.score_translation(outs, {"no": ["無"], "one": ["一"], "me": ["我"], "apple": ["蘋果"]})
    # scored: no (hit), one (miss), me (miss), apple (hit: a character of 蘋果); "ap ##ple" is two pieces
    assert (s["scored_words"], s["hits"]) == (4, 2) and s["target_script_rate"] == pytest.approx(3 / 6)


def test_langvec_end_to_end(tiny_model):
    d = Dictionary([("apple", "蘋果"), ("today", "今天"), ("i", "我"), ("he", "他")])
    r = langvec.langvec(str(tiny_model), {"en": SENTS[:9], "zh": SENTS[9:]}, SENTS[:4], d, "en", "zh",
                        alphas=(0, 1, 4), progress=False)
    assert len(r.grid) == 3 * 3 and r.best["alpha"] in (1.0, 4.0) and len(r.examples) == 4
    assert all(g["scored_words"] > 0 for g in r.grid) and r.distance[0]["distance"] > 0


# --------------------------------------------------------------------------------------------- CLI
def _corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(SENTS) + "\n", encoding="utf-8")
    return p


def test_cli_align_writes_results_and_figure(tiny_model, tmp_path):
    corpus = _corpus(tmp_path)
    d = tmp_path / "dict.txt"
    d.write_text("".join(f"{w}\t{w}\n" for w in WORDS) + "straße\tstraße\n", encoding="utf-8")
    out = tmp_path / "out"
    rc = main(["align", "--model", str(tiny_model), "--corpus", f"en={corpus}", "--corpus", f"zh={corpus}",
               "--dict", str(d), "--k", "2", "--no-cbow", "--keep-identical", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "bertology.align/1" and res["best"]["mrr"] == 1.0
    assert res["coverage"]["skipped"] == {"source unknown token for this tokenizer": 1}
    assert (out / "mrr_per_layer.png").stat().st_size > 1000


def test_cli_user_errors_exit_2(tiny_model, tiny_encoder, tmp_path, capsys):
    corpus = _corpus(tmp_path)
    d = tmp_path / "dict.txt"
    d.write_text("apple\tapple\n", encoding="utf-8")
    base = ["--corpus", f"en={corpus}", "--corpus", f"zh={corpus}", "--dict", str(d), "--out", str(tmp_path / "o")]
    assert main(["langvec", "--model", str(tiny_encoder), "--sentences", f"en={corpus}", *base]) == 2
    assert "masked-LM head" in capsys.readouterr().err
    assert main(["align", "--model", str(tiny_model), "--layers", "0,9", *base]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["align", "--model", str(tiny_model), "--layers", "x", *base]) == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("apple\n", encoding="utf-8")
    assert main(["align", "--model", str(tiny_model), "--corpus", f"en={corpus}", "--corpus", f"zh={corpus}",
                 "--dict", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.txt:1" in capsys.readouterr().err


def test_data_scale_runs_two_sizes_and_tracks_mrr(tmp_path, data_dir):
    """The data-scale driver end to end at toy size: two runs, same tokenizer, MRR logged at each evaluation."""
    en = tmp_path / "en.txt"
    zh = tmp_path / "zh.txt"
    en.write_text("\n".join(f"the {w} is in the city {i}" for i in range(60) for w in ("apple", "water", "book"))
                  + "\n", encoding="utf-8")
    zh.write_text("\n".join(f"{w}在城市里{i}" for i in range(60) for w in ("苹果", "水", "书")) + "\n", encoding="utf-8")
    d = tmp_path / "dict.txt"
    d.write_text("apple\t蘋果\nwater\t水\nbook\t書\ncity\t城市\n", encoding="utf-8")
    out = tmp_path / "scale"
    rc = main(["align-scale", "--corpus", f"en={en}", "--corpus", f"zh={zh}", "--dict", str(d), "--sentences", "40,120",
               "--max-steps", "4", "--eval-every", "2", "--batch-size", "2", "--max-length", "16", "--vocab-size", "300",
               "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "bertology.align-scale/1" and [r["sentences_per_lang"] for r in res["runs"]] == [40, 120]
    for run in res["runs"]:
        steps = [h["step"] for h in run["history"] if "mrr" in h]
        assert steps == [2, 4] and all(0 < h["mrr"] <= 1 for h in run["history"])
    assert res["alignment_pairs"]["source_words"] == 4 and res["alignment_pairs"]["converted_chinese_words"] == 2
    assert (out / "data_scale.png").stat().st_size > 1000
    # resuming is opt-in; the old spellings --steps / --seq-len still work (hidden aliases)
    again = ["align-scale", "--corpus", f"en={en}", "--corpus", f"zh={zh}", "--dict", str(d), "--sentences", "40,120",
             "--steps", "4", "--eval-every", "2", "--batch-size", "2", "--seq-len", "16", "--vocab-size", "300",
             "--out", str(out)]
    assert main(again) == 2
    assert main(again + ["--resume"]) == 0
    resumed = json.loads((out / "results.json").read_text())["runs"]
    assert [[h["step"] for h in r["history"] if "mrr" in h] for r in resumed] == [[2, 4], [2, 4]]


def test_occurrences_unknown_in_context_are_dropped(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    # "©" is neither a word character nor punctuation for BERT: "apple©" becomes one unknown word in context
    ws = align.usable_words(["apple", "book"], ["apple© here", "book© there", "an apple"], tok, k=5)
    assert ws.words == ["apple"] and [o.sentence for o in ws.occurrences["apple"]] == [2]
    assert ws.reasons == {"book": "unknown token in every context"}


def test_langvec_ignores_identical_dictionary_pairs(tiny_model):
    # "apple -> apple" is in MUSE-style dictionaries; echoing the input must not count as a translation
    d = Dictionary([("apple", "apple"), ("today", "today"), ("i", "i"), ("he", "他")])
    r = langvec.langvec(str(tiny_model), {"en": SENTS[:9], "zh": SENTS[9:]}, SENTS[:4], d, "en", "zh",
                        alphas=(0, 1), progress=False)
    assert all(g["scored_words"] == sum(t == "he" for s in SENTS[:4] for t in s.split()) for g in r.grid)


def test_align_skips_identical_dictionary_pairs_by_default(tiny_model):
    """"apple -> apple" aligns through the shared token, not a translation: skipped (and counted) unless
    keep_identical, and never a candidate."""
    d = Dictionary([("apple", "apple"), ("today", "today"), ("apple", "蘋果"), ("he", "他")])
    zh = ["我今天買了蘋果來吃", "他是中國人", "他買了蘋果", "apple 今天"]
    r = align.align(str(tiny_model), d, {"en": SENTS, "zh": zh}, "en", "zh", k=2, cbow=False, context_free=False,
                    progress=False)
    assert r.coverage["skipped"]["identical strings (a shared token, not a translation)"] == 2
    assert r.coverage["evaluated_pairs"] == 2 and r.coverage["source_words"] == 2
    kept = align.align(str(tiny_model), d, {"en": SENTS, "zh": zh}, "en", "zh", k=2, cbow=False,
                       context_free=False, progress=False, keep_identical=True)
    assert "identical strings (a shared token, not a translation)" not in kept.coverage["skipped"]
    assert kept.coverage["evaluated_pairs"] > 2


def test_cli_langvec_succeeds(tiny_model, tmp_path, capsys):
    corpus = _corpus(tmp_path)
    zh = tmp_path / "zh.txt"
    zh.write_text("\n".join(s for s in SENTS if any("\u4e00" <= c <= "\u9fff" for c in s)) + "\n", encoding="utf-8")
    d = tmp_path / "dict.txt"
    d.write_text("apple\t蘋果\ntoday\t今天\ni\t我\nhe\t他\n", encoding="utf-8")
    out = tmp_path / "lv"
    assert main(["langvec", "--model", str(tiny_model), "-c", f"en={corpus}", "-c", f"zh={zh}", "--dict", str(d),
                 "--convert", "none", "--sentences", f"en={corpus}@4", "--alphas", "0,1", "--layers", "1,2",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["grid"]) == 2 * 2 and {g["alpha"] for g in doc["grid"]} == {0.0, 1.0}
    assert doc["best"]["scored_words"] > 0 and (out / "langvec_grid.png").stat().st_size > 1000
    assert "best: layer" in capsys.readouterr().out


def _cli_and_config(command: str, tmp_path: Path) -> tuple[list[str], dict]:
    """The same run twice: as the command's flags, and as its config's fields (`out` aside)."""
    corpus = _corpus(tmp_path)
    if command == "align":     # the identity dictionary on one corpus: every word found, so the halves are full
        d = tmp_path / "identity.txt"
        d.write_text("".join(f"{w}\t{w}\n" for w in WORDS), encoding="utf-8")
        return (["--corpus", f"en={corpus}", "--corpus", f"zh={corpus}", "--dict", str(d), "--k", "2", "--no-cbow",
                 "--keep-identical", "--at-initialisation", "--layers", "0,2", "--seed", "3"],
                dict(corpus=[f"en={corpus}", f"zh={corpus}"], dict_path=str(d), k=2, cbow=False, keep_identical=True,
                     at_initialisation=True, layers="0,2", seed=3))
    zh = tmp_path / "zh.txt"
    zh.write_text("\n".join(SENTS[9:]) + "\n", encoding="utf-8")
    d = tmp_path / "dict.txt"
    d.write_text("apple\t蘋果\ntoday\t今天\ni\t我\nhe\t他\n", encoding="utf-8")
    return (["-c", f"en={corpus}", "-c", f"zh={zh}", "--dict", str(d), "--convert", "none", "--sentences",
             f"en={corpus}@4", "--alphas", "0,1", "--layers", "1,2", "--mean-sentences", "5"],
            dict(corpus=[f"en={corpus}", f"zh={zh}"], dict_path=str(d), convert="none", sentences=[f"en={corpus}@4"],
                 alphas=(0, 1), layers="1,2", mean_sentences=5))


@pytest.mark.parametrize("command", ["align", "langvec"])
def test_cli_writes_what_run_returns(command, tiny_model, tmp_path):
    """The command is wiring: its results.json is `run(cfg)` of the config its flags name, saved (timing
    aside); align's --at-initialisation adds the untrained model and the verdict's numbers."""
    from bertology.experiments.configs import AlignConfig, LangvecConfig

    flags, fields = _cli_and_config(command, tmp_path)
    assert main([command, "--model", str(tiny_model), *flags, "--out", str(tmp_path / "cli")]) == 0
    module, config = (align, AlignConfig) if command == "align" else (langvec, LangvecConfig)
    module.save(module.run(config(model=str(tiny_model), out=tmp_path / "lib", **fields), progress=False),
                tmp_path / "lib")
    cli, lib = (json.loads((tmp_path / where / "results.json").read_text()) for where in ("cli", "lib"))
    assert cli.pop("seconds") > 0 and lib.pop("seconds") > 0
    assert cli == lib
    if command == "align":
        assert {"at initialisation", "layer 0", "word alone", "random vectors"} <= set(cli["measures"])
        assert [row["layer"] for row in cli["at_initialisation"]["contextual"]["cosine"]] == [0, 2]
    else:
        assert len(cli["grid"]) == 2 * 2


def test_align_without_at_initialisation_saves_no_verdict(tiny_model, tmp_path):
    """results.json as before the setting existed: no `at_initialisation` or `measures` key unless asked."""
    from bertology.experiments.configs import AlignConfig

    _, fields = _cli_and_config("align", tmp_path)
    res = align.run(AlignConfig(model=str(tiny_model), out=tmp_path, **{**fields, "at_initialisation": False}),
                    progress=False)
    assert res.at_initialisation is None and res.measures is None
    doc = json.loads(align.save(res, tmp_path).read_text())
    assert "at_initialisation" not in doc and "measures" not in doc and doc["best"]["mrr"] == 1.0


@pytest.mark.parametrize("quick", [True, False])
def test_report_presets_are_the_commands_configs(quick, tmp_path):
    """The report runs `align` and `langvec` from configs the commands also accept (validated as made), at its
    quick and full settings, on one shared read of the corpora and dictionary."""
    from dataclasses import fields as dataclass_fields

    from bertology.experiments.configs import AlignConfig, BilingualSettings, LangvecConfig
    from bertology.report import ReportContext
    from bertology.report.sections.align import QUICK_LINES, align_preset, langvec_preset

    ctx = ReportContext(model="minilm", out_dir=tmp_path, data_dir="somewhere", seed=4, quick=quick)
    a, lv = align_preset(ctx, "minilm"), langvec_preset(ctx, "minilm")
    assert isinstance(a, AlignConfig) and isinstance(lv, LangvecConfig)
    lines = QUICK_LINES if quick else 30000
    assert (a.k, a.max_words, a.max_lines) == ((3, 300, lines) if quick else (5, 2000, lines))
    assert a.at_initialisation and a.cbow and a.layer_list() is None and a.seed == lv.seed == 4
    assert lv.alphas == ((0, 1, 2, 3) if quick else (0, 0.5, 1, 1.5, 2, 3))
    assert lv.mean_sentences == (300 if quick else 1000) and lv.sentences == [f"en=tatoeba-cmn-eng#0@{lv.mean_sentences}"]
    shared = [f.name for f in dataclass_fields(BilingualSettings)] + ["max_lines", "model", "precision"]
    assert {n: getattr(a, n) for n in shared} == {n: getattr(lv, n) for n in shared}   # one read serves both
    assert a.corpus == [f"en=tatoeba-cmn-eng#0@{lines}", f"zh=tatoeba-cmn-eng#1@{lines}"]
    assert a.out != lv.out


# Two languages in one script: the script checks cannot exclude "apple -> apple", only the identical-pair rule
# can (a test with Chinese as the target would pass even with that rule broken).
_LATIN_DICT = [("apple", "apple"), ("cat", "cat"), ("dog", "bank"), ("book", "river")]


def test_align_skips_identical_pairs_between_languages_of_one_script(tiny_model):
    d = Dictionary(_LATIN_DICT)
    r = align.align(str(tiny_model), d, {"en": SENTS[:9], "xx": SENTS[:9]}, "en", "xx", k=1, cbow=False,
                    context_free=False, progress=False)
    assert r.coverage["evaluated_pairs"] == 2 and r.coverage["source_words"] == 2


def test_langvec_ignores_identical_pairs_between_languages_of_one_script(tiny_model):
    d = Dictionary(_LATIN_DICT)
    r = langvec.langvec(str(tiny_model), {"en": SENTS[:5], "xx": SENTS[5:9]}, SENTS[:4], d, "en", "xx",
                        alphas=(0,), progress=False)
    # only "dog" and "book" have a real translation; "apple" and "cat" (in the test sentences) must not count
    n_real = sum(t in ("dog", "book") for s in SENTS[:4] for t in s.split())
    assert all(g["scored_words"] == n_real for g in r.grid)


def test_report_section_measures_every_model_with_its_baselines(tiny_model, tiny_encoder, tmp_path, data_dir,
                                                                monkeypatch):
    """The report's alignment and language-vector sections: a vocabulary that reads Chinese as [UNK] is not
    applicable (with the share); a model that reads it gets the verdict's numbers: layer chosen on dev words,
    test-word MRR beside layer 0, the word alone, random vectors and the same architecture at initialisation;
    language vectors beside the unshifted output and the best constant token."""
    import bertology.core.vocab
    from bertology.report import ReportContext
    from bertology.report.sections import align as section
    from bertology.report.sections.align import report_section

    monkeypatch.setattr(section, "QUICK_LINES", 800)                   # the quick code path, at toy size

    ctx = ReportContext(model=str(tiny_encoder), fallback_model=str(tiny_model), out_dir=tmp_path, data_dir=str(data_dir))
    monkeypatch.setattr(bertology.core.vocab, "UNKNOWN_LIMIT", 1.0)   # the tiny vocabulary, read as if it could
    align_sec, lv_sec = report_section(ctx)
    by_model = {m["model"]: m for m in align_sec.measures["align"]}
    for m in by_model.values():
        assert {"layer 0", "word alone", "random vectors", "at initialisation", "random ranking"} <= set(m)
        assert m["test_words"] > 0 and m["dev_words"] > 0 and len(m["ci"]) == 2
    langvec = {m["model"]: m for m in lv_sec.measures["langvec"]}
    assert "no masked-LM head" in langvec[str(tiny_encoder)]["not_applicable"]
    assert "constant" in langvec[str(tiny_model)] or "not_applicable" in langvec[str(tiny_model)]
    monkeypatch.setattr(bertology.core.vocab, "UNKNOWN_LIMIT", 0.05)
    align_sec, _ = report_section(ReportContext(model=str(tiny_encoder), fallback_model="", out_dir=tmp_path / "b",
                                                data_dir=str(data_dir)))
    assert "[UNK]" in align_sec.measures["align"][0]["not_applicable"] and align_sec.error
