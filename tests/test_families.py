"""Every BERT family through every command (issue 26): tiny random models of bert, roberta, xlm-roberta, distilbert,
albert, electra (the generator), deberta-v2 and mpnet, each with a tokenizer of its real kind (tests/helpers/
families.py). Each cell either works or exits 2 with a true reason; the assertions are properties a wrong result
breaks: the mask found, tokens printed as text, cloze items scorable, a target's pieces being its characters,
the shift landing on the hidden state asked for.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from bertology.cli import main
from bertology.core import adapter
from bertology.core.models import has_mlm_head, load_model, load_tokenizer
from bertology.experiments.cloze import answer_piece, cloze_accuracy, read_cloze_items
from bertology.experiments.pretrain import fill_mask
from helpers.families import FAMILIES

# Byte-level BPE writes bytes as printable characters from these ranges (Ġ = a space, å/æ/è + Ĳ... = Chinese):
# any of them in an output is a raw byte-level token, not text.
RAW_BYTE_LEVEL = re.compile(r"[\u0100-\u0143]|[åæäèé][\u0080-\u0143]")
# Families whose tiny vocabulary holds the cloze answers as single pieces in context. The byte-level one (like the
# English-only roberta-base) writes a Chinese character as bytes: its zh items are truly unscorable.
ZH_COVERED = set(FAMILIES) - {"roberta"}


def _readable(tok, token: str, token_id: int) -> bool:
    """Printed as its text: what decoding the id gives (stripped), ␣ for whitespace, ## for WordPiece, escaped
    bytes for part of a character; never raw byte-level symbols."""
    if RAW_BYTE_LEVEL.search(token):
        return False
    return token in (tok.decode([token_id]).strip(), adapter.BLANK) or token.startswith("##") or "\\x" in token


@pytest.mark.parametrize("family", FAMILIES)
def test_fill_mask_finds_the_mask_and_prints_text(families, family):
    path = str(families[family])
    tok = load_tokenizer(path)
    res = fill_mask(path, ["今天買了蘋[MASK]來吃", "the capital of france is [MASK].", f"a {tok.mask_token} b"], top_k=8)
    assert [len(it["masks"]) for it in res.items] == [1, 1, 1]     # `[MASK]` is the model's mask token
    assert res.items[0]["text"] == "今天買了蘋[MASK]來吃"              # the user's text, as given
    for it in res.items:
        for c in it["masks"][0]["candidates"]:
            assert _readable(tok, c["token"], c["id"]), (family, c)


@pytest.mark.parametrize("family", FAMILIES)
def test_cloze_items_are_scorable_in_context(families, family):
    path = str(families[family])
    tok = load_tokenizer(path)
    items = read_cloze_items()
    res = cloze_accuracy(path, items)
    for lang in ("en", "zh"):
        scorable = res.summary[lang]["n"] - res.summary[lang]["unscorable"]
        if lang == "en" or family in ZH_COVERED:
            assert scorable > 0, (family, lang, res.summary)
        else:
            assert scorable == 0
    for it, row in zip(items, res.items):
        piece = answer_piece(tok, it)
        assert row["scorable"] == (piece is not None)
        if piece is not None:      # the piece scored is the answer's characters, nothing more
            assert adapter.display_token(tok, piece).lower() == it.answer.lower(), (family, it)
        assert not any(RAW_BYTE_LEVEL.search(t) for t in row["top5"])
    assert main(["cloze", "--model", path]) == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_target_pieces_are_the_target_characters(families, family):
    """A lone `▁` before a Chinese character at the start of a sentence (XLM-R, ALBERT, DeBERTa) is no part of it:
    the target's pieces are exactly its characters, so `--pool first` and `--pool mean` agree on one character."""
    from bertology.core.embed import Embedder, find_occurrences

    path = str(families[family])
    tok = load_tokenizer(path)
    for sentence, target in [("今天買了蘋果來吃", "今"), ("今天買了蘋果來吃", "果"), ("i ate an apple today", "ate")]:
        enc = tok(sentence, add_special_tokens=False, return_offsets_mapping=True)
        start = sentence.index(target)
        pos = adapter.covering_pieces(tok, enc["input_ids"], enc["offset_mapping"], start, start + len(target))
        spans = [enc["offset_mapping"][p] for p in pos]
        assert sentence[min(a for a, _ in spans):max(b for _, b in spans)].strip() == target, \
            (family, tok.convert_ids_to_tokens(enc["input_ids"]))
        if target == "今":
            one_piece = len(pos) == 1        # byte-level: a Chinese character can be three byte pieces
    emb = Embedder(path, progress=False)
    sents = ["今天買了蘋果來吃", "今天我們去學校"]
    occ = find_occurrences(sents, "今")
    first = emb.occurrence_vectors(sents, occ, pool="first")
    mean = emb.occurrence_vectors(sents, occ, pool="mean")
    assert torch.allclose(torch.from_numpy(first), torch.from_numpy(mean)) == one_piece


@pytest.mark.parametrize("family", FAMILIES)
def test_senses_en_and_zh(families, family, tmp_path):
    path = str(families[family])
    for demo in ("apple-zh", "apple-en"):
        assert main(["senses", "--sentences", demo, "--model", path, "--out", str(tmp_path / demo)]) == 0
        doc = json.loads((tmp_path / demo / "results.json").read_text())
        assert len(doc["layers"]) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_shift_lands_on_the_hidden_state_asked_for(families, family):
    """langvec's shift at layer L changes hidden state L by exactly the vector added (ELECTRA: after the
    projection; ALBERT: the L-th call of its shared layer), and so the MLM output."""
    model = load_model(str(families[family]), "mlm")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        plain = model(input_ids=ids, output_hidden_states=True)
    for layer in range(len(plain.hidden_states)):
        delta = torch.randn(plain.hidden_states[layer].shape[-1])

        def add(module, args, out):
            return (out[0] + delta,) + tuple(out[1:]) if isinstance(out, tuple) else out + delta
        handle = adapter.hook_hidden_state(model, layer, add)
        try:
            with torch.no_grad():
                shifted = model(input_ids=ids, output_hidden_states=True)
        finally:
            handle.remove()
        assert torch.allclose(shifted.hidden_states[layer], plain.hidden_states[layer] + delta, atol=1e-5)
        assert not torch.allclose(shifted.logits, plain.logits)


def _bilingual(tmp_path: Path) -> tuple[Path, Path, Path]:
    en = ["i ate an apple today", "he bought a new phone", "you read the book", "i am a student", "he is good"] * 3
    zh = ["我今天吃了蘋果", "他買了新手機", "你看書", "我是學生", "他很好"] * 3
    d = tmp_path / "dict.txt"
    d.write_text("i\t我\nhe\t他\nyou\t你\napple\t蘋果\ngood\t好\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("\n".join(en) + "\n", encoding="utf-8")
    (tmp_path / "zh.txt").write_text("\n".join(zh) + "\n", encoding="utf-8")
    return tmp_path / "en.txt", tmp_path / "zh.txt", d


@pytest.mark.parametrize("family", FAMILIES)
def test_langvec_and_align(families, family, tmp_path):
    path = str(families[family])
    en, zh, d = _bilingual(tmp_path)
    corpora = ["-c", f"en={en}", "-c", f"zh={zh}", "--dict", str(d), "--convert", "none"]
    assert main(["langvec", "--model", path, *corpora, "--sentences", f"en={en}@5", "--alphas", "0,1",
                 "--out", str(tmp_path / "lv")]) == 0
    doc = json.loads((tmp_path / "lv" / "results.json").read_text())
    # dictionary words found whatever the piece convention: "i", "he", "you" are one piece in every family
    assert doc["best"]["scored_words"] > 0
    for ex in doc["examples"]:
        assert not any(RAW_BYTE_LEVEL.search(t) for t in ex["tokens"] + ex["shifted"] + ex["unshifted"])
    assert main(["align", "--model", path, *corpora, "--no-cbow", "--k", "2", "--out", str(tmp_path / "al")]) == 0
    doc = json.loads((tmp_path / "al" / "results.json").read_text())
    assert doc["coverage"]["evaluated_pairs"] >= 3


def test_serve_fill_mask_every_family(families):
    from bertology.serve import Explorer, ServeConfig

    explorer = Explorer(ServeConfig(models=[str(families[f]) for f in FAMILIES], max_loaded=1))
    for f in FAMILIES:
        assert explorer.model_list()[FAMILIES.index(f)]["mlm"], f
        res = explorer.fill_mask(str(families[f]), "今天買了蘋[MASK]來吃", 5)
        tok = load_tokenizer(str(families[f]))
        assert len(res["masks"]) == 1 and all(_readable(tok, c["token"], c["id"]) for c in res["masks"][0]["candidates"])


def test_report_fill_mask_section_every_family(families, tmp_path):
    from bertology.report import ReportContext
    from bertology.report.sections.pretrain import report_section

    for f in ("roberta", "xlm-roberta", "distilbert", "electra"):
        sec = report_section(ReportContext(model=str(families[f]), out_dir=tmp_path / f, data_dir=None, fallback_model=""))
        assert not sec.error, (f, sec.error)
        assert not any(RAW_BYTE_LEVEL.search(row["top-5"]) for caption, rows in sec.tables
                       if caption.startswith("Top-5") for row in rows)
        # the verdict's item set is scored on every family: in-context answer pieces, not 0 by tokenisation
        (m,) = sec.measures["fillmask"]
        assert m.get("items", 0) > 0, (f, m)


def test_usable_length_counts_roberta_position_offset(families):
    """roberta's tokenizer was saved without a limit (1e30): the limit is the 66 position embeddings less the
    offset of pad_token_id + 1 = 2, so a long text is cut at 64 tokens instead of crashing."""
    from bertology.core.models import load_config

    path = str(families["roberta"])
    tok = load_tokenizer(path)
    assert adapter.usable_length(tok, load_config(path)) == 64
    res = fill_mask(path, ["[MASK] " + "the apple is red . " * 40])
    assert len(res.items[0]["masks"]) == 1
    assert main(["fill-mask", "--model", path, "the apple is red . " * 40 + "[MASK]"]) == 2   # beyond 64 tokens


def test_every_family_is_recognised_as_a_masked_lm(families):
    assert all(has_mlm_head(str(families[f])) for f in FAMILIES)
    assert {f: adapter.piece_convention(load_tokenizer(str(families[f]))) for f in FAMILIES} == {
        "bert": "continuation", "distilbert": "continuation", "electra": "continuation", "mpnet": "continuation",
        "roberta": "word-start", "xlm-roberta": "word-start", "albert": "word-start", "deberta-v2": "word-start"}


# --------------------------------------------------------------------------------------------- bad models
def _copy_with_config(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("changes,words", [({"hidden_size": 64, "num_attention_heads": 2}, "does not match the weights"),
                                           ({"num_hidden_layers": 3}, "3 layers"),
                                           ({"vocab_size": 100}, "vocab_size is 100")])
def test_config_that_disagrees_with_the_weights_exits_2(families, tmp_path, capsys, changes, words):
    bad = _copy_with_config(families["bert"], tmp_path / "bad", **changes)
    for cmd in (["fill-mask", "a [MASK]", "--model", str(bad)],
                ["senses", "--sentences", "apple-en", "--model", str(bad), "--out", str(tmp_path / "o")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err


def test_model_type_without_a_masked_lm_class_exits_2(tmp_path, capsys):
    from transformers import GPT2Config, GPT2Model

    d = tmp_path / "gpt2"
    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=38400)).save_pretrained(d)
    shutil.copy(Path(__file__).parent.parent / "src" / "bertology" / "weights" / "zh-en-mini" / "tokenizer.json", d)
    for f in ("tokenizer_config.json", "special_tokens_map.json"):
        src = Path(__file__).parent.parent / "src" / "bertology" / "weights" / "zh-en-mini" / f
        if src.exists():
            shutil.copy(src, d)
    for cmd in (["fill-mask", "a [MASK]", "--model", str(d)], ["cloze", "--model", str(d)]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "'gpt2'" in err and f"{cmd[0]} needs a masked-LM model" in err, err


def test_qa_train_and_predict_every_family(families, tmp_path):
    """`--max-length 600` is clamped to what each model takes (roberta: 66 positions less its offset of 2)."""
    from bertology.experiments import qa
    from test_qa import _toy_examples

    train = qa.QADataset("toy", _toy_examples(16, 0))
    s = qa.QASettings(max_length=600, doc_stride=16, max_query_len=16, max_answer_len=5)
    t = qa.TrainSettings(epochs=1, batch_size=8, lr=1e-3, warmup=0.0, seed=0, eval_every=10**6,
                         checkpoint_every=10**6)
    for f in FAMILIES:
        model, tok, _ = qa.train(str(families[f]), [train], None, tmp_path / f, s, t, progress=False)
        p = qa.predict(model, tok, train.examples, s, progress=False)
        assert all(p.answers[e.id] in e.context for e in train.examples), f


def test_crossdomain_every_family(families, tmp_path):
    import random

    rng = random.Random(0)
    task = tmp_path / "task.csv"
    task.write_text("sequence,label\n" + "".join(f"{''.join(rng.choice('ACGT') for _ in range(100))},"
                                                f"{'pos' if i % 2 else 'neg'}\n" for i in range(40)))
    for f in FAMILIES:
        assert main(["crossdomain", "--task", str(task), "--model", str(families[f]), "--out", str(tmp_path / f),
                     "--conditions", "pretrained", "--seeds", "1", "--epochs", "1", "--max-length", "600",
                     "--batch-size", "8"]) == 0, f


def test_long_sentence_on_roberta_is_windowed(families):
    """senses on a sentence longer than roberta's 64 usable positions: a window around the target, no IndexError
    from the position offset."""
    from bertology.core.embed import Embedder, find_occurrences

    emb = Embedder(str(families["roberta"]), progress=False)
    assert emb.max_length == 64
    sents = ["the apple is red . " * 30 + "i ate an apple today"]
    vecs = emb.occurrence_vectors(sents, find_occurrences(sents, "apple"))
    assert vecs.shape[:2] == (3, 31)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "bert"])
def test_pretrain_init_from_names_the_family_it_accepts(families, family, tmp_path, capsys):
    corpus = tmp_path / "en.txt"
    corpus.write_text("the cat ate an apple today\n" * 50, encoding="utf-8")
    assert main(["pretrain", "--corpus", f"en={corpus}", "--init-from", str(families[family]), "--vocab-size", "200",
                 "--max-length", "32", "--max-steps", "2", "--no-progress", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model_type 'bert'" in err and repr(family) in err and len(err.splitlines()) == 1


def test_electra_discriminator_has_no_masked_lm_head(families, tmp_path, capsys):
    """ELECTRA's *ForPreTraining is the discriminator (replaced-token detection): no head to fill in blanks with."""
    from transformers import AutoConfig, ElectraForPreTraining

    d = tmp_path / "disc"
    shutil.copytree(families["electra"], d)
    ElectraForPreTraining(AutoConfig.from_pretrained(d)).save_pretrained(d)
    assert not has_mlm_head(str(d))
    assert main(["fill-mask", "a [MASK]", "--model", str(d)]) == 2
    assert "no masked-LM head" in capsys.readouterr().err
    assert main(["senses", "--sentences", "apple-en", "--model", str(d), "--out", str(tmp_path / "s")]) == 0


def test_serve_language_vector_every_family(families, data_dir):
    from bertology.serve import Explorer, ServeConfig

    explorer = Explorer(ServeConfig(models=[str(families[f]) for f in FAMILIES], data_dir=str(data_dir),
                                    corpus_lines=200, mean_sentences=50, max_loaded=1))
    for f in FAMILIES:
        res = explorer.langvec(str(families[f]), "i ate an apple today", 1, 2.0)
        assert res["tokens"] and len(res["tokens"]) == len(res["before"]) == len(res["after"]), f
        assert not any(RAW_BYTE_LEVEL.search(t) for t in res["tokens"] + res["before"] + res["after"]), (f, res)
