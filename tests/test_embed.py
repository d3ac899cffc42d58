"""The embedding engine returns exactly what a direct forward pass gives, finds targets correctly, and
refuses what it cannot do (absent target, [UNK], bad layer) with a UserError."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from bertology.core.embed import Embedder, find_occurrences
from bertology.errors import UserError

SENTENCES = ["I ate an apple today.", "Apple launched a new iPhone, and apple stock rose.",
             "The apple tree is green", "今天買了蘋果來吃", "蘋果股價跌了", "bought apple juice"]


def _direct(model_dir, sentence, char_span, pool="mean"):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    enc = tok(sentence, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    pos = [i for i, (a, b) in enumerate(offsets) if b > a and a < char_span[1] and b > char_span[0]]
    with torch.no_grad():
        hs = torch.stack(model(**enc, output_hidden_states=True).hidden_states)[:, 0]
    return (hs[:, pos].mean(1) if pool == "mean" else hs[:, pos[0]]).numpy()


def test_find_occurrences_whole_words_and_cjk():
    occ = find_occurrences(SENTENCES[:3], "apple")
    assert [(o.sentence, o.start, o.end) for o in occ] == [(0, 9, 14), (1, 0, 5), (1, 33, 38), (2, 4, 9)]
    with pytest.raises(UserError, match="x.txt: sentence 1 does not contain"):
        find_occurrences(["pineapple apples", "an apple"], "apple", source="x.txt")
    occ = find_occurrences(SENTENCES[3:5], "果")
    assert [(o.sentence, o.start) for o in occ] == [(0, 5), (1, 1)]


@pytest.mark.parametrize("pool", ["mean", "first"])
def test_vectors_equal_direct_forward(tiny_model, pool):
    emb = Embedder(str(tiny_model), batch_size=2, progress=False)
    occ = find_occurrences(SENTENCES[:3], "apple") + \
        [o.__class__(o.sentence + 3, o.start, o.end) for o in find_occurrences(SENTENCES[3:5], "蘋果")]
    vecs = emb.occurrence_vectors(SENTENCES, occ, pool=pool)
    assert vecs.shape == (3, len(occ), 32)
    for k, o in enumerate(occ):
        ref = _direct(tiny_model, SENTENCES[o.sentence], (o.start, o.end), pool)
        np.testing.assert_allclose(vecs[:, k], ref, atol=1e-5)


def test_real_minilm_matches_direct_forward():
    emb = Embedder("minilm", batch_size=4, progress=False)
    occ = find_occurrences(SENTENCES[:3], "apple")
    vecs = emb.occurrence_vectors(SENTENCES[:3], occ, layers=[0, 6])
    from bertology.core.models import resolve_model
    for k, o in enumerate(occ):
        ref = _direct(resolve_model("minilm"), SENTENCES[o.sentence], (o.start, o.end))
        np.testing.assert_allclose(vecs[:, k], ref[[0, 6]], atol=1e-5)


def test_long_sentence_keeps_target_in_window(tiny_model):
    emb = Embedder(str(tiny_model), progress=False)           # max_position_embeddings = 64
    long = " ".join(["the dog"] * 60) + " apple " + " ".join(["the cat"] * 10)
    occ = find_occurrences([long], "apple")
    vec = emb.occurrence_vectors([long], occ)
    assert np.isfinite(vec).all() and np.abs(vec).sum() > 0
    # the window is the 62 body tokens ending 20 tokens after the target: compare with a direct pass over it
    tok = emb.tokenizer
    body = tok(long, add_special_tokens=False)["input_ids"]
    t = body.index(tok.convert_tokens_to_ids("apple"))
    lo = max(0, min(t - 31, len(body) - 62))
    ids = torch.tensor([emb._wrap(body[lo:lo + 62])[0]])
    with torch.no_grad():
        hs = torch.stack(emb.model(input_ids=ids, output_hidden_states=True).hidden_states)[:, 0]
    np.testing.assert_allclose(vec[:, 0], hs[:, t - lo + 1].numpy(), atol=1e-5)


def test_unknown_token_and_bad_layer_are_user_errors(tiny_model):
    emb = Embedder(str(tiny_model), progress=False)
    with pytest.raises(UserError, match=r"unknown token"):
        emb.occurrence_vectors(["I like 鳳梨"], find_occurrences(["I like 鳳梨"], "鳳梨"))
    with pytest.raises(UserError, match="out of range"):
        emb.occurrence_vectors(["an apple"], find_occurrences(["an apple"], "apple"), layers=[7])


def test_bf16_close_to_fp32(tiny_model):
    occ = find_occurrences(SENTENCES[:3], "apple")
    a = Embedder(str(tiny_model), progress=False).occurrence_vectors(SENTENCES[:3], occ)
    b = Embedder(str(tiny_model), precision="bf16", progress=False).occurrence_vectors(SENTENCES[:3], occ)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos.min() > 0.98


def test_sentence_means_exclude_special_tokens(tiny_model):
    emb = Embedder(str(tiny_model), progress=False)
    m = emb.sentence_means(SENTENCES[:2])
    tok, model = AutoTokenizer.from_pretrained(tiny_model), AutoModel.from_pretrained(tiny_model).eval()
    enc = tok(SENTENCES[1], return_tensors="pt")
    with torch.no_grad():
        hs = torch.stack(model(**enc, output_hidden_states=True).hidden_states)[:, 0, 1:-1].mean(1)
    np.testing.assert_allclose(m[:, 1], hs.numpy(), atol=1e-5)


def test_token_budget_batches_give_the_same_vectors(tiny_model, monkeypatch):
    """A batch cut by a budget of padded tokens (the default) holds a different number of inputs than one of
    batch_size inputs, and gives the same vectors and sentence means, to float rounding."""
    from bertology.core import inference

    sizes = []
    real = inference.pad_batch
    monkeypatch.setattr(inference, "pad_batch", lambda items, pad: (sizes.append(len(items)), real(items, pad))[1])
    words = ["apple", "pear", "an apple a day", "fig"] + SENTENCES
    budget = Embedder(str(tiny_model), batch_size=2, progress=False)       # 2 x 16 = 32 padded tokens a batch
    rows = Embedder(str(tiny_model), batch_size=2, progress=False, token_budget=False)
    by_budget = budget.sentence_means(words)
    budget_sizes, sizes[:] = list(sizes), []
    by_rows = rows.sentence_means(words)
    assert sizes == [2] * 5 and max(budget_sizes) > 2 and len(budget_sizes) < 5   # batched differently
    np.testing.assert_allclose(by_budget, by_rows, atol=1e-5)
    occ = find_occurrences(SENTENCES[:3], "apple")
    np.testing.assert_allclose(budget.occurrence_vectors(SENTENCES[:3], occ),
                               rows.occurrence_vectors(SENTENCES[:3], occ), atol=1e-5)
