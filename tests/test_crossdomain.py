"""Cross-disciplinary transfer: loaders, splits, mapping, windows, conditions, and the experiment end to end
(on a tiny random BERT, so it runs in seconds)."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import torch

from bertology.cli import main
from bertology.experiments.crossdomain import (CONDITIONS, CrossDomainConfig, build_model, encode, make_mapping, predict_logits,
                                   read_mapping, run_crossdomain, save, split_indices, stratified_subset, word_tokens)
from bertology.io.sequences import kmers, load_sequences
from bertology.errors import UserError
from bertology.metrics import classification_scores
from bertology.core.models import load_tokenizer
from bertology.report.figures import crossdomain_figures


# --------------------------------------------------------------------------------------------- loaders
def test_splice_csv_real(data_dir):
    d = load_sequences(data_dir / "splice" / "splice.csv")
    assert d.format == "splice" and len(d) == 3190
    assert Counter(d.labels) == {"N": 1655, "IE": 768, "EI": 767}
    assert all(len(s) == 60 for s in d.sequences)
    # 15 sequences carry ambiguity codes; they stay symbols of their own
    amb = [s for s in d.sequences if set(s) - set("ACGT")]
    assert len(amb) == 15 and {"D", "N", "S", "R"} <= {x for s in amb for x in s}
    assert d.lines[0] == 2  # line 1 is the header


def test_splice_headerless_original(tmp_path, data_dir):
    lines = (data_dir / "splice" / "splice.csv").read_text().splitlines()[1:6]
    f = tmp_path / "splice.data"
    f.write_text("\n".join(lines) + "\n")
    d = load_sequences(f)
    assert d.format == "splice" and len(d) == 5 and d.lines[0] == 1 and d.labels[0] == "EI"


def test_bad_rows_name_file_and_line_or_are_skipped(tmp_path):
    f = tmp_path / "seqs.csv"
    f.write_text("sequence,label\nACGT,x\nAC1T,y\nACGG\nGGTA,y\n")
    with pytest.raises(UserError, match=r"seqs.csv:3: .*'1'"):
        load_sequences(f)
    d = load_sequences(f, skip_bad=True)
    assert len(d) == 2 and len(d.skipped) == 2 and "seqs.csv:4" in d.skipped[1]
    assert main(["crossdomain", "--task", str(f), "--out", str(tmp_path / "o")]) == 2


def test_generic_table_header_order_tsv_and_tokens(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("label,sequence\npos,ACGT\nneg,TTTT\n")
    d = load_sequences(f)
    assert d.labels == ["pos", "neg"] and d.sequences[0] == list("ACGT")
    g = tmp_path / "b.tsv"
    g.write_text("60:1 62:0.5\tbach\n-1:1 60:1\tmozart\n")   # no header, whitespace tokens
    d = load_sequences(g)
    assert d.sequences[0] == ["60:1", "62:0.5"] and d.labels == ["bach", "mozart"] and d.format == "table"


def test_fasta_and_protein_tsv(tmp_path, data_dir):
    f = tmp_path / "p.fasta"
    f.write_text(">P1 nuclear\nMKV\nLLA\n>P2|ER\nMAAX\n>P3\nMMM\n")
    with pytest.raises(UserError, match=r"p.fasta:6: FASTA header has no label"):
        load_sequences(f)
    d = load_sequences(f, skip_bad=True)
    assert d.labels == ["nuclear", "ER"] and d.sequences[0] == list("MKVLLA") and d.lines == [1, 4]
    p = load_sequences(data_dir / "protein" / "multiloc_11class.tsv")
    assert p.format == "protein-tsv" and len(p) == 5959 and len(set(p.labels)) == 11
    assert max(len(s) for s in p.sequences) == 5430


def test_kmers():
    assert kmers(list("ACGTA"), 3) == ["ACG", "CGT", "GTA"]
    assert kmers(["60:1", "62:1", "64:1"], 2) == ["60:1_62:1", "62:1_64:1"]
    assert kmers(list("AC"), 3) == ["AC"]


# --------------------------------------------------------------------------------------------- splits
def test_music_split_is_group_aware_and_stratified(data_dir):
    d = load_sequences(data_dir / "music" / "composer_voices.tsv.gz")
    assert d.format == "music" and len(d) == 8508 and len(set(d.groups)) == 1831
    sp = split_indices(d, seed=0)
    pieces = {k: {d.groups[i] for i in v} for k, v in sp.items()}
    assert not (pieces["train"] & pieces["dev"]) and not (pieces["train"] & pieces["test"]) \
        and not (pieces["dev"] & pieces["test"])
    assert sorted(sum(sp.values(), [])) == list(range(len(d)))
    for part in ("dev", "test"):   # every composer is scored
        assert {d.labels[i] for i in sp[part]} == set(d.labels)
    assert split_indices(d, seed=0) == sp and split_indices(d, seed=1) != sp


def test_splice_split_and_subset_are_stratified(data_dir):
    d = load_sequences(data_dir / "splice" / "splice.csv")
    sp = split_indices(d, seed=3)
    # 3,190 rows but 3,005 distinct sequences: duplicates are dealt out together, so the parts are 80/10/10 of
    # the distinct sequences (rounded per class), and no sequence stands on two sides
    key = {i: "".join(s) for i, s in enumerate(d.sequences)}
    distinct = {k: {key[i] for i in v} for k, v in sp.items()}
    assert sum(len(v) for v in sp.values()) == 3190
    assert all(abs(len(distinct[k]) - n) <= 3 for k, n in [("train", 2404), ("dev", 300), ("test", 300)])
    assert not (distinct["train"] & distinct["test"]) and not (distinct["train"] & distinct["dev"]) \
        and not (distinct["dev"] & distinct["test"])
    share = Counter(d.labels[i] for i in sp["test"])["N"] / len(sp["test"])
    assert abs(share - 1655 / 3190) < 0.01
    sub = stratified_subset(d, 600, seed=0)
    assert abs(len(sub) - 600) <= 2 and abs(Counter(d.labels[i] for i in sub)["N"] / len(sub) - 1655 / 3190) < 0.01


# --------------------------------------------------------------------------------------------- mapping & windows
def test_mapping_whole_words_seeded_and_file(tiny_encoder, tmp_path):
    tok = load_tokenizer(str(tiny_encoder))
    words = word_tokens(tok)
    assert words and not any(w.startswith("##") or w.startswith("[") or len(w) < 2 for w in words)
    m = make_mapping("ACGTN", tok, seed=1)
    assert set(m) == set("ACGTN") and len(set(m.values())) == 5 and set(m.values()) <= set(words)
    assert make_mapping("ACGTN", tok, seed=1) == m and make_mapping("ACGTN", tok, seed=2) != m
    f = tmp_path / "map.json"
    f.write_text(json.dumps({"A": "apple", "C": "notaword"}))
    with pytest.raises(UserError, match="'notaword' is not in the model's vocabulary"):
        read_mapping(f, tok, "AC")
    f.write_text(json.dumps({"mapping": {"A": "apple"}}))   # a results.json also works
    with pytest.raises(UserError, match="no token for symbol.*'C'"):
        read_mapping(f, tok, "AC")
    assert read_mapping(f, tok, "A") == {"A": "apple"}


def test_long_sequences_are_windowed_and_logits_averaged(tiny_encoder):
    ids = {c: i + 10 for i, c in enumerate("ACGT")}
    enc = encode([list("ACGT" * 5), list("AC")], [1, 0], ids, cls_id=2, sep_id=3, max_length=8)
    # 20 symbols, windows of 6: 6+6+6+2 -> 4 windows; nothing dropped
    assert [len(e["input_ids"]) for e in enc.examples] == [8, 8, 8, 4, 4] and enc.owner == [0, 0, 0, 0, 1]
    assert sum(len(e["input_ids"]) - 2 for e in enc.examples[:4]) == 20
    assert all(e["input_ids"][0] == 2 and e["input_ids"][-1] == 3 for e in enc.examples)
    capped = encode([list("ACGT" * 5)], [1], ids, 2, 3, max_length=8, max_windows=2)
    assert len(capped.examples) == 2 and capped.examples[-1]["input_ids"][1:-1] == [ids[c] for c in "GT"]
    model = build_model("scratch", str(tiny_encoder), 2, seed=0).eval()   # from_config leaves train mode on
    avg = predict_logits(model, enc)
    with torch.inference_mode():
        per_window = [model(input_ids=torch.tensor([e["input_ids"]])).logits[0].numpy() for e in enc.examples]
    np.testing.assert_allclose(avg[0], np.mean(per_window[:4], axis=0), atol=1e-5)
    np.testing.assert_allclose(avg[1], per_window[4], atol=1e-5)


# --------------------------------------------------------------------------------------------- conditions
def test_conditions_change_exactly_what_they_claim(tiny_encoder):
    name = str(tiny_encoder)
    pre = build_model("pretrained", name, 3, seed=0).state_dict()
    # seed 1: the fixture itself was made by a random init from seed 0, which scratch with seed 0 reproduces
    scratch = build_model("scratch", name, 3, seed=1).state_dict()
    rand = build_model("rand-embed", name, 3, seed=0).state_dict()
    shuf = build_model("shuffled", name, 3, seed=0).state_dict()
    emb = "bert.embeddings.word_embeddings.weight"
    q = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(pre[q], scratch[q])
    assert not torch.equal(pre[emb], rand[emb]) and torch.equal(pre[q], rand[q])
    for k in (emb, q):   # shuffled: same multiset of values, different arrangement
        assert not torch.equal(pre[k], shuf[k])
        assert torch.equal(pre[k].flatten().sort().values, shuf[k].flatten().sort().values)
    assert torch.equal(build_model("shuffled", name, 3, seed=0).state_dict()[q], shuf[q])   # seeded
    with pytest.raises(UserError):
        build_model("bogus", name, 3, seed=0)


def test_metrics_macro_f1_counts_missing_classes():
    s = classification_scores([0, 0, 1, 1], [0, 0, 1, 0], labels=[0, 1, 2])
    assert s["accuracy"] == 0.75
    assert s["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)


# --------------------------------------------------------------------------------------------- end to end
def _easy_task(path, n=90, seed=0):
    """Class 'a' sequences are mostly A, class 'c' mostly C: a random tiny BERT can learn it in a few epochs."""
    rng = random.Random(seed)
    rows = ["sequence,label"]
    for i in range(n):
        lab = "a" if i % 2 else "c"
        main_sym = "A" if lab == "a" else "C"
        rows.append("".join(main_sym if rng.random() < 0.8 else rng.choice("GT") for _ in range(rng.randint(6, 14)))
                    + f",{lab}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_experiment_end_to_end_learns_saves_and_resumes(tiny_encoder, tmp_path, monkeypatch):
    task = _easy_task(tmp_path / "easy.csv", n=90)
    cfg = CrossDomainConfig(model=str(tiny_encoder), task=str(task), conditions=("scratch", "frozen"),
                            seeds=2, epochs=3, patience=None, batch_size=8, lr=2e-3, max_length=8, progress=False)
    out = tmp_path / "out"
    res = run_crossdomain(cfg, out)
    crossdomain_figures(res, out)
    save(res, out)
    # seed-major order: a run stopped part-way still has every condition for the seeds it finished
    assert [(r.condition, r.seed) for r in res.runs] == [("scratch", 0), ("frozen", 0), ("scratch", 1), ("frozen", 1)]
    by = {(r.condition, r.seed): r for r in res.runs}
    assert by[("scratch", 0)].test_accuracy >= 0.85 and by[("frozen", 0)].test_accuracy >= 0.85
    assert len(by[("scratch", 0)].dev_curve) == 3 and by[("scratch", 0)].best_epoch in (1.0, 2.0, 3.0)
    # sequences up to 14 symbols with max_length 8: windows were used, not truncation
    assert res.split_sizes["train_windows"] > res.split_sizes["train"]
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "bertology.crossdomain/1"
    assert set(doc["summary"]) == {"scratch", "frozen"} and doc["summary"]["scratch"]["n"] == 2
    assert doc["summary"]["scratch"]["accuracy_std"] == pytest.approx(
        np.std([by[("scratch", 0)].test_accuracy, by[("scratch", 1)].test_accuracy], ddof=1))
    assert sorted(sum(doc["splits"].values(), [])) == list(range(2, 92))   # source lines, header skipped
    assert set(doc["mapping"]) == {"A", "C", "G", "T"}
    assert 0.3 < doc["majority_accuracy"]["test"] < 0.7   # balanced classes
    assert (out / "conditions.png").stat().st_size > 0 and (out / "learning_curves.png").stat().st_size > 0
    assert not (out / "runs" / "scratch-seed0" / "checkpoint").exists()   # cleaned after a finished run
    # resuming is opt-in: the same command again without `resume` is refused, naming the flag
    with pytest.raises(UserError, match="resume"):
        run_crossdomain(cfg, out)
    cfg = CrossDomainConfig(**{**cfg.__dict__, "resume": True})
    # with it, finished runs are reused, not retrained (identical numbers, no new training)
    again = run_crossdomain(cfg, out)
    assert [r.test_accuracy for r in again.runs] == [r.test_accuracy for r in res.runs]
    assert [r.wall_time for r in again.runs] == [r.wall_time for r in res.runs]
    # different settings into the same directory: refused with a clear message
    with pytest.raises(UserError, match="different settings"):
        run_crossdomain(CrossDomainConfig(**{**cfg.__dict__, "lr": 1e-3}), out)
    # the report can show this finished run instead of computing its quick one
    from bertology.report.sections.crossdomain import REPORT_RESULTS_ENV, report_section
    from bertology.report import ReportContext

    monkeypatch.setenv(REPORT_RESULTS_ENV, str(out / "results.json"))
    sec = report_section(ReportContext(model="unused", out_dir=tmp_path / "rep", data_dir=None))
    assert "shown as saved" in sec.explanation and len(sec.figures) == 2 and all(f.exists() for f in sec.figures)
    assert [r["condition"] for r in sec.tables[0][1]] == ["scratch", "frozen"]
    # an interrupted run's checkpoint is only resumed under the same settings
    other = tmp_path / "other"
    (other / "runs" / "scratch-seed0").mkdir(parents=True)
    (other / "runs" / "scratch-seed0" / "fingerprint.txt").write_text("0123456789abcdef\n")
    with pytest.raises(UserError, match="interrupted run with different settings"):
        run_crossdomain(cfg, other)


def test_cli_help_and_bad_input(tmp_path, capsys):
    assert main(["crossdomain", "--help"]) == 0
    assert "rand-embed" in capsys.readouterr().out
    assert main(["crossdomain", "--task", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert main(["crossdomain", "--task", "splice", "--conditions", "pretrained,magic",
                 "--out", str(tmp_path / "o")]) == 2
    assert "magic" in capsys.readouterr().err
    assert set(CONDITIONS) == {"pretrained", "scratch", "rand-embed", "shuffled", "frozen", "composition"}


def _order_task(path, n=80, seed=0):
    """Same composition, different order: class 'x' sequences are ACAC..., class 'y' AACC... (equal counts of
    A and C). Only a model that sees order can tell them apart; k-mers of length 2 can, single symbols cannot."""
    rows = ["composer\tpiece\tpart\tnotes"]
    for i in range(n):
        half = 3 + i // 2 + seed      # every piece its own length: no voice repeats another piece's (a leak)
        seq = ["60:1.0", "62:1.0"] * half if i % 2 else ["60:1.0"] * half + ["62:1.0"] * half
        rows.append(f"{'x' if i % 2 else 'y'}\tpiece{i // 2}\t{i % 2}\t{' '.join(seq)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_composition_baseline_and_piece_vote(tiny_encoder, tmp_path):
    """composition: logistic regression on k-mer counts, k chosen on dev (here 2: single notes carry no signal);
    music is scored per voice and per piece (majority vote), and every run keeps its test predictions."""
    task = _order_task(tmp_path / "voices.tsv", n=120)
    cfg = CrossDomainConfig(model=str(tiny_encoder), task=str(task), conditions=("composition", "frozen"),
                            seeds=2, max_length=16, progress=False)
    res = run_crossdomain(cfg)
    comp = [r for r in res.runs if r.condition == "composition"]
    assert [r.seed for r in comp] == [0, 1] and comp[0].test_accuracy == comp[1].test_accuracy == 1.0
    assert comp[0].kmer_k == 2 and comp[0].test_group_accuracy is not None
    assert len(comp[0].test_predictions) == len(res.test_labels) == len(res.splits["test"])
    assert res.test_groups and len(res.test_groups) == len(res.test_labels)
    assert "group_accuracy_mean" in res.summary["composition"]
    assert res.outside_alphabet == {}


def test_report_section_tests_pretrained_against_scratch_paired(tmp_path, monkeypatch):
    """The report's verdict uses McNemar's exact test on the runs' test predictions, and a recorded full-scale
    run is shown beside this run's table."""
    from bertology.experiments.crossdomain import CrossDomainResult, RunResult, summarize
    from bertology.report.claims import verdicts
    from bertology.report.sections import crossdomain as section

    truth = [0, 1] * 50
    right = list(truth)
    wrong_half = [t if i % 2 else 1 - t for i, t in enumerate(truth)]      # 50 right, 50 wrong
    runs = [RunResult("pretrained", 0, 1.0, 1.0, 1.0, 1.0, [], 1.0, test_predictions=right),
            RunResult("scratch", 0, 0.5, 0.5, 0.5, 1.0, [], 1.0, test_predictions=wrong_half)]
    result = CrossDomainResult("m", "splice", "x", {}, ["EI", "IE"], {}, {"test": list(range(100))}, {}, runs,
                               summarize(runs), majority_accuracy={"test": 0.5}, test_labels=truth,
                               lr_search={"scratch": {"dev": {"0.0001": 0.5, "0.0002": 0.5}, "chosen": 1e-4}})
    monkeypatch.setattr(section, "RECORDED", tmp_path / "none.json")
    sec = section.present(result, "a test")
    paired = sec.measures["transfer"][0]["paired"]["scratch"]
    assert paired["p"] == pytest.approx(2 * 0.5 ** 50) and paired["ci"][0] > 0.3
    assert "McNemar" in sec.explanation and len(sec.tables) == 1
    # a recorded run without its test predictions: its paired test was not run, so its verdict is "not run"
    (tmp_path / "rec.json").write_text(json.dumps({"model": "minilm", "task": "splice", "command": "bertology x",
                                                   "date": "2026-11-30", "machine": "2 cores", "wall_minutes": 50,
                                                   "summary": result.summary, "majority_accuracy": {"test": 0.5}}))
    monkeypatch.setattr(section, "RECORDED", tmp_path / "rec.json")
    sec = section.present(result, "a test")
    assert len(sec.tables) == 2 and "recorded full-scale run" in sec.tables[1][0]
    rows = [c for c in verdicts([sec]) if c["id"] == "transfer"]
    assert rows[0]["verdict"] == "shown" and "McNemar p" in rows[0]["this_run"]
    assert rows[1]["recorded"] and rows[1]["verdict"] == "not run"
    # the same numbers with scratch left at pretrained's recipe: not a fair baseline, so not run, with the reason
    result.lr_search = {}
    row = next(c for c in verdicts([section.present(result, "a test")]) if c["id"] == "transfer")
    assert row["verdict"] == "not run" and "not tuned on dev" in row["reason"]



def test_lr_grid_chooses_on_dev_and_reuses_the_chosen_run(tiny_encoder, tmp_path):
    """Recipes are chosen on dev, never test: the tuned condition trains once per rate on the first seed, keeps
    the best dev accuracy, and later seeds use that rate; an untuned condition keeps `lr`."""
    task = _easy_task(tmp_path / "easy.csv", n=60)
    cfg = CrossDomainConfig(model=str(tiny_encoder), task=str(task), conditions=("pretrained", "scratch"),
                            seeds=2, epochs=2, patience=None, batch_size=8, lr=2e-3, lr_grid=(1e-6, 3e-3),
                            max_length=8, progress=False)
    res = run_crossdomain(cfg, tmp_path / "out")
    dev = res.lr_search["scratch"]["dev"]
    assert set(dev) == {"1e-06", "0.003"}
    chosen = res.lr_search["scratch"]["chosen"]
    assert dev[f"{chosen:g}"] == max(dev.values())
    assert [(r.condition, r.seed, r.lr) for r in res.runs] == [
        ("pretrained", 0, 2e-3), ("scratch", 0, chosen), ("pretrained", 1, 2e-3), ("scratch", 1, chosen)]
    assert (tmp_path / "out" / "runs" / "scratch-seed0-lr1e-06").is_dir()
    assert res.split_report["cross_part_duplicates"] == 0 and res.split_report["examples"] == 60
    with pytest.raises(UserError, match="lr_grid"):
        run_crossdomain(CrossDomainConfig(**{**cfg.__dict__, "lr_grid": (float("nan"),)}), tmp_path / "o2")


def test_fresh_models_of_a_bf16_stored_checkpoint_are_fp32(tmp_path, tiny_model):
    """zh-en-mini's config.json says dtype bfloat16, and transformers 5 builds from_config models in that dtype:
    `scratch` then trained in pure bf16 (on an AVX2-only CPU ~25x slower than fp32, 29 s a step in the report),
    and alignment's "at initialisation" baseline drew its weights in bf16. Every freshly initialised model is fp32."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from bertology.experiments.crossdomain import build_model

    src = tmp_path / "bf16"
    AutoModelForMaskedLM.from_pretrained(tiny_model).to(torch.bfloat16).save_pretrained(src)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(src)
    assert json.loads((src / "config.json").read_text()).get("dtype") == "bfloat16"
    for condition in ("scratch", "pretrained", "shuffled"):
        dtypes = {p.dtype for p in build_model(condition, str(src), 2, seed=0).parameters()}
        assert dtypes == {torch.float32}, (condition, dtypes)
