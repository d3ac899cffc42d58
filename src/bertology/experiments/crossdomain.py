"""Cross-disciplinary transfer (Kao & Lee 2021, "Is BERT a cross-disciplinary knowledge learner?"): fine-tune
a BERT pretrained on English on DNA, protein or music sequences whose symbols were mapped to random English
words, and compare it with the same network trained from scratch — plus the controls that ask *why* it helps.

Conditions (each fine-tuned with the shared engine, early-stopped on dev accuracy, scored on test):
- `pretrained`  the pretrained weights, a fresh classifier head.
- `scratch`     the same config, random initialisation.
- `rand-embed`  pretrained body, word embeddings re-initialised: is the gain in the body or in the embeddings?
- `shuffled`    every pretrained tensor's entries randomly permuted: same per-tensor value distribution (scale,
                sign mix), no learned structure. If this matched `pretrained`, "a good initialisation" would
                mean only "well-scaled weights".
- `frozen`      no fine-tuning: a logistic-regression probe on frozen pretrained features (mean of the last
                layer over the sequence's symbol tokens). Tells how much is usable without any training.

Symbols -> words: each symbol (or k-mer) maps to one whole-word vocabulary token drawn at random (seeded),
excluding special, `[unused]` and `##` pieces. Input = [CLS] w1 ... wn [SEP]; the token ids are set directly,
so one symbol is exactly one position whatever the tokenizer would make of the word.

Long sequences (MultiLoc proteins reach 5,430 residues, some music voices 5,000 notes): a sequence is cut
into consecutive non-overlapping windows of `max_length - 2` symbols. Training uses every window as an example
with the sequence's label (capped at `max_windows` per sequence, evenly spaced, so one giant protein cannot
dominate an epoch); prediction averages the logits of all windows of a sequence. Nothing is silently cut.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io.sequences import SequenceData, load_sequences
from ..io.splits import leak_free_split, normalise_input
from ..errors import UserError
from .configs import CONDITIONS, CrossDomainConfig  # noqa: F401  (the settings, declared torch-free)
from ..io.rundir import finished_run, fingerprint, mark_finished, refuse_unless_resuming
from ..io.storage import find_dataset, save_results

SCHEMA = "bertology.crossdomain/1"
# Built-in tasks: data set name (storage.DATASETS) and file format.
TASKS = {"splice": ("splice", "splice"), "multiloc": ("multiloc", "protein-tsv"), "composer": ("composer", "music")}


# --------------------------------------------------------------------------------------------- settings / results
@dataclass
class RunResult:
    condition: str
    seed: int
    test_accuracy: float
    test_macro_f1: float
    dev_accuracy: float
    best_epoch: float | None                  # epoch whose weights were kept (None: frozen probe)
    dev_curve: list[dict]                     # per epoch: epoch, accuracy, macro_f1
    wall_time: float                          # seconds, training + evaluation
    train_examples_per_s: float | None = None
    steps: int = 0
    stopped_early: bool = False
    probe_c: float | None = None              # frozen / composition: the regularisation chosen on dev
    kmer_k: int | None = None                 # composition: the k-mer length chosen on dev
    test_group_accuracy: float | None = None  # grouped data (music): accuracy per piece, majority vote of voices
    test_predictions: list[int] = field(default_factory=list)   # per test sequence: for paired significance tests
    lr: float | None = None                   # fine-tuned conditions: the peak learning rate this run used


@dataclass
class CrossDomainResult:
    model: str
    task: str
    data_path: str
    settings: dict
    labels: list[str]
    split_sizes: dict                         # sequences per split, and training windows
    splits: dict                              # split -> source-file line numbers
    mapping: dict                             # symbol -> vocabulary token
    runs: list[RunResult]
    summary: dict                             # condition -> mean/std of test accuracy and macro-F1, n
    skipped_rows: list[str] = field(default_factory=list)
    majority_accuracy: dict = field(default_factory=dict)   # dev/test accuracy of always answering the
    figures: list[str] = field(default_factory=list)        # most frequent training label: the floor to beat
    outside_alphabet: dict = field(default_factory=dict)    # symbol -> occurrences outside the task's alphabet
    test_labels: list[int] = field(default_factory=list)    # per test sequence: its label index (the order of
    test_groups: list[str] | None = None                    # runs' test_predictions); its group (music: piece)
    split_report: dict = field(default_factory=dict)        # io.splits.SplitReport: duplicates, conflicts, leaks
    lr_search: dict = field(default_factory=dict)           # condition -> {"dev": {lr: dev accuracy}, "chosen"}

    def payload(self) -> dict:
        d = asdict(self)
        d.pop("figures")
        return d


# --------------------------------------------------------------------------------------------- data
def load_task(task: str, data_dir: str | None = None, fmt: str = "auto", symbols: str = "auto", kmer: int = 1,
              skip_bad: bool = False) -> SequenceData:
    if task in TASKS:
        name, task_fmt = TASKS[task]
        path = find_dataset(name, data_dir)
        fmt = task_fmt if fmt == "auto" else fmt
    else:
        path = Path(task)
        if not path.exists():
            raise UserError(f"`task` {task!r}: not one of {', '.join(TASKS)} and no such file", fields=('task',))
    return load_sequences(path, fmt=fmt, symbols=symbols, kmer=kmer, skip_bad=skip_bad)


def _units(data: SequenceData) -> tuple[list[str], dict[str, list[int]], dict[str, str]]:
    """Split units (groups, or single examples) with their member indices and label."""
    keys = data.groups if data.groups is not None else [str(i) for i in range(len(data))]
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    unit_label = {k: data.labels[m[0]] for k, m in members.items()}
    return list(members), members, unit_label


def stratified_subset(data: SequenceData, n: int, seed: int) -> list[int]:
    """About `n` examples keeping every class's share; whole groups only. Fixed by `seed`."""
    if n >= len(data):
        return list(range(len(data)))
    rng = np.random.default_rng(seed)
    units, members, unit_label = _units(data)
    by_label: dict[str, list[str]] = {}
    for u in units:
        by_label.setdefault(unit_label[u], []).append(u)
    chosen: list[int] = []
    for label, us in sorted(by_label.items()):
        quota = max(1, round(n * sum(len(members[u]) for u in us) / len(data)))
        got = 0
        for j in rng.permutation(len(us)):
            if got >= quota:
                break
            chosen += members[us[j]]
            got += len(members[us[j]])
    return sorted(chosen)


def split_indices(data: SequenceData, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[int]]:
    """Seeded train/dev/test split, stratified by label, leak-free: the same sequence (case and white space
    folded) and the same group never stand on two sides (io.splits.leak_free_split)."""
    return split_with_report(data, fractions, seed)[0]


def split_with_report(data: SequenceData, fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """`split_indices` and the io.splits.SplitReport of duplicates and conflicting labels it found."""
    keys = [normalise_input("\x1f".join(seq)) for seq in data.sequences]
    return leak_free_split(keys, data.labels, fractions, seed, groups=data.groups)


# --------------------------------------------------------------------------------------------- mapping
_UNUSED = re.compile(r"^\[unused\d+\]$|^<unused\d+>$")


def word_tokens(tokenizer) -> list[str]:
    """Whole-word vocabulary tokens: no special tokens, no `[unused]`, no `##` continuation pieces, letters only.
    For byte-level BPE / SentencePiece vocabularies, the word-initial form (Ġ / ▁ prefix) is required."""
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    marked = [t for t in vocab if t[:1] in ("Ġ", "▁")]
    word_start = len(marked) > len(vocab) // 4        # a vocabulary that marks word starts
    out = []
    for t in sorted(vocab, key=vocab.get):
        if t in special or _UNUSED.match(t) or t.startswith("##"):
            continue
        if word_start:
            if t[:1] not in ("Ġ", "▁"):
                continue
            t_core = t[1:]
        else:
            t_core = t
        if len(t_core) >= 2 and t_core.isalpha():
            out.append(t)
    return out


def make_mapping(symbols: Sequence[str], tokenizer, seed: int) -> dict[str, str]:
    """Each distinct symbol -> a distinct whole-word token drawn at random (fixed by `seed`)."""
    symbols = sorted(set(symbols))
    words = word_tokens(tokenizer)
    if len(words) < len(symbols):
        raise UserError(f"the vocabulary has {len(words)} whole-word tokens, fewer than the {len(symbols)} "
                        f"symbols to map (lower `kmer`)", fields=('kmer',))
    rng = np.random.default_rng(seed + 104729)
    pick = rng.choice(len(words), size=len(symbols), replace=False)
    return {s: words[j] for s, j in zip(symbols, pick)}


def read_mapping(path: str | Path, tokenizer, symbols: Sequence[str]) -> dict[str, str]:
    """A mapping file: a JSON object symbol -> token, or a crossdomain results.json (its "mapping")."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such mapping file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise UserError(f"{path}: not a JSON mapping ({str(e) or type(e).__name__})") from None
    if isinstance(doc, dict) and isinstance(doc.get("mapping"), dict):
        doc = doc["mapping"]
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise UserError(f"{path}: expected a JSON object mapping each symbol to a vocabulary token")
    vocab = tokenizer.get_vocab()
    for s, t in doc.items():
        if t not in vocab:
            raise UserError(f"{path}: field {s!r}: token {t!r} is not in the model's vocabulary")
    missing = sorted(set(symbols) - set(doc))
    if missing:
        raise UserError(f"{path}: no token for symbol(s) {', '.join(map(repr, missing[:5]))}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    mapping = {s: doc[s] for s in sorted(set(symbols))}
    # two symbols written as one token are one symbol to the model: the sequences it reads lose information
    seen: dict[str, str] = {}
    for s, t in mapping.items():
        if t in seen:
            raise UserError(f"{path}: symbols {seen[t]!r} and {s!r} both map to token {t!r}; each symbol needs "
                            f"a token of its own")
        seen[t] = s
    return mapping


# --------------------------------------------------------------------------------------------- encoding
@dataclass
class Encoded:
    """Windows of token ids for one split; `owner[i]` = which sequence window i belongs to."""
    examples: list[dict]
    owner: list[int]
    labels: list[int]                           # per sequence
    n_sequences: int


def encode(seqs: list[list[str]], labels: list[int], ids: dict[str, int], cls_id: int, sep_id: int,
           max_length: int, max_windows: int | None = None) -> Encoded:
    """Cut each sequence into non-overlapping windows of `max_length - 2` symbols; [CLS] ... [SEP] each.
    With `max_windows`, keep that many evenly spaced windows per sequence (training only)."""
    width = max(1, max_length - 2)
    examples, owner = [], []
    for i, (seq, y) in enumerate(zip(seqs, labels)):
        tok = [ids[s] for s in seq]
        windows = [tok[a:a + width] for a in range(0, len(tok), width)]
        if max_windows and len(windows) > max_windows:
            keep = np.linspace(0, len(windows) - 1, max_windows).round().astype(int)
            windows = [windows[k] for k in sorted(set(keep.tolist()))]
        for w in windows:
            examples.append({"input_ids": [cls_id] + w + [sep_id], "labels": y})
            owner.append(i)
    return Encoded(examples, owner, list(labels), len(seqs))


def predict_logits(model, enc: Encoded, batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Per-sequence logits: each window's logits, averaged over the sequence's windows."""
    return _window_average(model, enc, batch_size, precision, lambda out, batch: out.logits.float())


def features(base_model, enc: Encoded, batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Frozen features: last-layer hidden states averaged over the symbol tokens of a window ([CLS], [SEP] and
    padding excluded), then over the sequence's windows."""
    def symbol_mean(out, batch):
        hidden = out.last_hidden_state.float()
        mask = batch["attention_mask"].clone()
        mask[:, 0] = 0                                                                  # [CLS]
        mask[torch.arange(mask.shape[0]), batch["attention_mask"].sum(1) - 1] = 0      # [SEP]
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)

    return _window_average(base_model, enc, batch_size, precision, symbol_mean)


def _window_average(model, enc: Encoded, batch_size: int, precision: str, row_of) -> np.ndarray:
    """One vector per sequence: `row_of(output, batch)` per window, averaged over the sequence's windows."""
    from ..core.inference import batched_inference

    sums, counts = None, np.zeros(enc.n_sequences)
    items = [{"input_ids": e["input_ids"]} for e in enc.examples]
    for group, batch, out in batched_inference(model, items, batch_size, precision=precision):
        rows = row_of(out, batch).cpu().numpy()
        if sums is None:
            sums = np.zeros((enc.n_sequences, rows.shape[1]))
        for row, i in zip(rows, group):
            sums[enc.owner[i]] += row
            counts[enc.owner[i]] += 1
    return sums / counts[:, None]


# --------------------------------------------------------------------------------------------- models per condition
def build_model(condition: str, model_name: str, num_labels: int, seed: int, trust_remote_code: bool = False):
    """The classifier for one condition, initialised reproducibly from `seed`."""
    from transformers import AutoModelForSequenceClassification

    from ..core.engine import set_seed
    from ..core.models import fresh_model, load_config, load_model

    set_seed(seed)  # the fresh classifier head (and everything in `scratch`) draws from the global RNG
    if condition == "scratch":
        config = load_config(model_name, trust_remote_code=trust_remote_code)
        config.num_labels = num_labels
        model = fresh_model(AutoModelForSequenceClassification, config, trust_remote_code)
    else:
        model = load_model(model_name, head="classify", trust_remote_code=trust_remote_code, num_labels=num_labels)
    gen = torch.Generator().manual_seed(seed + 31337)
    if condition == "rand-embed":
        emb = model.get_input_embeddings().weight
        std = float(getattr(model.config, "initializer_range", 0.02))
        with torch.no_grad():
            emb.copy_(torch.randn(emb.shape, generator=gen) * std)
    elif condition == "shuffled":
        # Permute the pretrained body only; the classifier head is freshly initialised in every condition.
        with torch.no_grad():
            for p in model.base_model.parameters():
                flat = p.detach().reshape(-1)
                p.copy_(flat[torch.randperm(flat.numel(), generator=gen)].reshape(p.shape))
    elif condition not in ("pretrained", "scratch"):
        raise UserError(f"unknown condition {condition!r} (known: {', '.join(CONDITIONS)})")
    return model


# --------------------------------------------------------------------------------------------- one run
def _test_scores(run: RunResult, labels: list[int], scores: np.ndarray, groups: list[str] | None) -> RunResult:
    """Fill in what every condition reports from its test-set scores: predictions and, for grouped data, the
    per-group (per-piece) majority-vote accuracy."""
    from ..metrics import group_vote_accuracy

    run.test_predictions = [int(k) for k in scores.argmax(1)]
    if groups is not None:
        run.test_group_accuracy = group_vote_accuracy(labels, scores, groups)
    return run


def _finetune(condition: str, seed: int, cfg: CrossDomainConfig, enc: dict[str, Encoded], num_labels: int,
              pad_id: int, run_dir: Path | None, test_groups: list[str] | None = None) -> RunResult:
    from ..core.engine import ExampleBatches, TrainConfig, train
    from ..metrics import classification_scores

    labels_idx = list(range(num_labels))
    model = build_model(condition, cfg.model, num_labels, seed, cfg.trust_remote_code)

    def evaluate(m):
        pred = predict_logits(m, enc["dev"], precision=cfg.precision).argmax(1)
        return classification_scores(enc["dev"].labels, pred, labels_idx)

    tcfg = TrainConfig(out_dir=run_dir, lr=cfg.lr, warmup=cfg.warmup, epochs=cfg.epochs, precision=cfg.precision, seed=seed,
                       metric="accuracy", greater_is_better=True, patience=cfg.patience, resume=run_dir is not None,
                       progress=cfg.progress)
    res = train(model, ExampleBatches(enc["train"].examples, cfg.batch_size, seed=seed, pad_id=pad_id), tcfg,
                evaluate=evaluate)
    t0 = time.perf_counter()
    logits = predict_logits(model, enc["test"], precision=cfg.precision)
    test = classification_scores(enc["test"].labels, logits.argmax(1), labels_idx)
    curve = [{"epoch": h["epoch"], "accuracy": h.get("accuracy"), "macro_f1": h.get("macro_f1")} for h in res.history]
    best = next((h for h in res.history if h["step"] == res.best_step), None)
    run = RunResult(condition, seed, test["accuracy"], test["macro_f1"], res.best_metric,
                    best["epoch"] if best else None, curve, res.wall_time + time.perf_counter() - t0,
                    res.examples / max(res.wall_time, 1e-9), res.steps, res.stopped_early, lr=cfg.lr)
    return _test_scores(run, enc["test"].labels, logits, test_groups)


def _probe(seed: int, cfg: CrossDomainConfig, feats: dict[str, np.ndarray], enc: dict[str, Encoded],
           num_labels: int, feat_seconds: float, test_groups: list[str] | None = None) -> RunResult:
    """Logistic regression on standardised frozen features; C chosen on dev accuracy. Training features average
    the same (at most `max_windows`) windows fine-tuning sees; dev/test features average all windows."""
    from sklearn.preprocessing import StandardScaler

    from ..metrics import classification_scores

    t0 = time.perf_counter()
    labels_idx = list(range(num_labels))
    scaler = StandardScaler().fit(feats["train"])
    X = {k: scaler.transform(v) for k, v in feats.items()}
    y = {k: e.labels for k, e in enc.items()}
    c, dev, clf = _best_logistic_regression(X, y, (0.01, 0.1, 1.0, 10.0), seed, labels_idx)
    test = classification_scores(enc["test"].labels, clf.predict(X["test"]), labels_idx)
    run = RunResult("frozen", seed, test["accuracy"], test["macro_f1"], dev["accuracy"], None, [],
                    feat_seconds + time.perf_counter() - t0, probe_c=c)
    return _test_scores(run, enc["test"].labels, _class_scores(clf, X["test"], num_labels), test_groups)


def _best_logistic_regression(X: dict, y: dict, cs, seed: int, labels_idx: list[int]):
    """Logistic regression on X["train"] for each C in `cs`; the one with the best dev accuracy (the first on a
    tie) as (C, its dev scores, the fitted classifier)."""
    from sklearn.linear_model import LogisticRegression

    from ..metrics import classification_scores

    best = None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(X["train"], y["train"])
        dev = classification_scores(y["dev"], clf.predict(X["dev"]), labels_idx)
        if best is None or dev["accuracy"] > best[1]["accuracy"]:
            best = (c, dev, clf)
    return best


def _class_scores(clf, X, num_labels: int) -> np.ndarray:
    """predict_proba with a column for every class (a class absent from training gets 0)."""
    proba = clf.predict_proba(X)
    out = np.zeros((proba.shape[0], num_labels))
    out[:, clf.classes_] = proba
    return out


def _composition(seed: int, cfg: CrossDomainConfig, data: SequenceData, split: dict[str, list[int]],
                 y: list[int], num_labels: int, test_groups: list[str] | None = None) -> RunResult:
    """The no-order baseline: logistic regression on k-mer frequencies (every k-mer of length 1..k, counted and
    normalised per sequence); k and C chosen on dev. What a model reaches from composition alone, without the
    order of the symbols beyond k."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from ..metrics import classification_scores

    t0 = time.perf_counter()
    labels_idx = list(range(num_labels))
    docs = {p: [data.sequences[i] for i in idx] for p, idx in split.items()}
    ys = {p: [y[i] for i in idx] for p, idx in split.items()}
    best = None
    for k in (1, 2, 3):
        vec = TfidfVectorizer(analyzer=lambda seq, k=k: ["\x1f".join(seq[i:i + n]) for n in range(1, k + 1)
                                                          for i in range(len(seq) - n + 1)],
                              use_idf=False, norm="l1", min_df=2)
        X = {"train": vec.fit_transform(docs["train"])}
        X.update({p: vec.transform(d) for p, d in docs.items() if p != "train"})
        c, dev, clf = _best_logistic_regression(X, ys, (1.0, 10.0, 100.0, 1000.0), seed, labels_idx)
        if best is None or dev["accuracy"] > best[0]["accuracy"]:
            best = (dev, k, c, clf, X)
    dev, k, c, clf, X = best
    scores = _class_scores(clf, X["test"], num_labels)
    test = classification_scores(ys["test"], scores.argmax(1), labels_idx)
    run = RunResult("composition", seed, test["accuracy"], test["macro_f1"], dev["accuracy"], None, [],
                    time.perf_counter() - t0, probe_c=c, kmer_k=k)
    return _test_scores(run, ys["test"], scores, test_groups)


def summarize(runs: list[RunResult]) -> dict:
    def mean_std(values) -> tuple[float, float]:
        v = np.array(values, dtype=float)
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

    out = {}
    for cond in dict.fromkeys(r.condition for r in runs):
        rs = [r for r in runs if r.condition == cond]
        acc_mean, acc_std = mean_std([r.test_accuracy for r in rs])
        f1_mean, f1_std = mean_std([r.test_macro_f1 for r in rs])
        out[cond] = {"n": len(rs), "accuracy_mean": acc_mean, "accuracy_std": acc_std,
                     "macro_f1_mean": f1_mean, "macro_f1_std": f1_std,
                     "best_epoch_mean": float(np.mean([r.best_epoch for r in rs])) if rs[0].best_epoch is not None else None,
                     "wall_time_mean": float(np.mean([r.wall_time for r in rs]))}
        if rs[0].test_group_accuracy is not None:
            out[cond]["group_accuracy_mean"], out[cond]["group_accuracy_std"] = \
                mean_std([r.test_group_accuracy for r in rs])
    return out


# --------------------------------------------------------------------------------------------- the experiment
def _check_config(cfg: CrossDomainConfig) -> None:
    """What the config's bounds and choices cannot say, checked before any work (it checked those as it was made:
    precision, each condition, counts, learning rates, warm-up, max_length)."""
    if not cfg.conditions:
        raise UserError(f"`conditions`: none given (known: {', '.join(CONDITIONS)})", fields=('conditions',))
    bad_tune = [c for c in cfg.tune if c not in FINETUNED]
    if bad_tune:
        raise UserError(f"`tune`: {', '.join(bad_tune)} is not fine-tuned (tunable: {', '.join(FINETUNED)})",
                        fields=("tune",))


@dataclass
class _Prepared:
    """The task as every run sees it: labelled splits, the symbol mapping, the encoded windows."""

    data: SequenceData
    label_names: list[str]
    split: dict[str, list[int]]
    mapping: dict[str, str]
    enc: dict[str, Encoded]
    pad_id: int
    max_length: int
    split_report: dict


def _prepare(cfg: CrossDomainConfig) -> _Prepared:
    from ..core.models import load_config, load_tokenizer

    data = load_task(cfg.task, cfg.data_dir, cfg.format, cfg.symbols, cfg.kmer, cfg.skip_bad)
    if cfg.limit:
        data = data.subset(stratified_subset(data, cfg.limit, cfg.seed))
    label_names = sorted(set(data.labels))
    if len(label_names) < 2:
        raise UserError(f"{data.path}: needs at least 2 labels, found {label_names}")
    y = [label_names.index(l) for l in data.labels]
    split, split_report = split_with_report(data, cfg.fractions, cfg.seed)
    for part in ("train", "dev", "test"):
        if not split[part]:
            raise UserError(f"{data.path}: too few examples for a {part} split ({len(data)} in all)")

    tokenizer = load_tokenizer(cfg.model, cfg.trust_remote_code)
    model_config = load_config(cfg.model, cfg.trust_remote_code)
    from ..core.adapter import usable_length

    max_length = usable_length(tokenizer, model_config, cfg.max_length)   # positions less offset, tokenizer limit
    all_symbols = {s for seq in data.sequences for s in seq}
    mapping = read_mapping(cfg.mapping, tokenizer, all_symbols) if cfg.mapping else \
        make_mapping(all_symbols, tokenizer, cfg.seed)
    vocab = tokenizer.get_vocab()
    ids = {s: vocab[t] for s, t in mapping.items()}
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id or 0
    if cls_id is None or sep_id is None:
        raise UserError(f"model {cfg.model!r}: its tokenizer has no [CLS]/[SEP] (or BOS/EOS) tokens")
    enc = {part: encode([data.sequences[i] for i in idx], [y[i] for i in idx], ids, cls_id, sep_id, max_length,
                        cfg.max_windows if part == "train" else None)
           for part, idx in split.items()}
    return _Prepared(data, label_names, split, mapping, enc, pad_id, max_length, split_report.to_json())


def run_crossdomain(cfg: CrossDomainConfig, out_dir: str | Path | None = None) -> CrossDomainResult:
    """Run every (condition, seed) and return the result. With `out_dir`, each run keeps an engine checkpoint
    under out_dir/runs/<condition>-seed<k>/ while it trains and a run.json when done, so re-running the same
    command after an interruption resumes where it stopped (finished runs are not redone)."""
    from tqdm.auto import tqdm

    _check_config(cfg)
    out = Path(out_dir) if out_dir else None
    if out and (out / "runs").is_dir() and any((out / "runs").iterdir()):
        refuse_unless_resuming(out, "the runs of an earlier experiment", cfg.resume)
    prep = _prepare(cfg)
    data, split, enc = prep.data, prep.split, prep.enc
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "data_dir", "resume")}
    settings["max_length_used"] = prep.max_length
    splits_lines = {k: [data.lines[i] for i in v] for k, v in split.items()}
    fp = fingerprint({"s": {k: v for k, v in settings.items() if k not in ("seeds", "conditions")},
                      "m": prep.mapping, "sp": splits_lines})

    # Seed-major order: an experiment stopped part-way still has every condition for the seeds it finished.
    todo = [(c, cfg.seed + k) for k in range(cfg.seeds) for c in cfg.conditions]
    shared: dict = {}        # what several runs can share: the frozen features, the composition baseline
    runs: list[RunResult] = []
    lr_search: dict[str, dict] = {}
    bar = tqdm(total=len(todo) + len(_tuned(cfg)) * max(len(cfg.lr_grid) - 1, 0), desc="runs", unit="run",
               disable=not cfg.progress, dynamic_ncols=True)
    for cond, seed in todo:
        if cond in _tuned(cfg) and cond not in lr_search:     # first seed: one run per learning rate, pick on dev
            tried = {lr: _run_or_resume(cond, seed, lr, cfg, prep, out, fp, shared, bar) for lr in cfg.lr_grid}
            chosen = max(tried, key=lambda lr: tried[lr].dev_accuracy)     # ties: the first (smallest) rate
            lr_search[cond] = {"dev": {f"{lr:g}": r.dev_accuracy for lr, r in tried.items()}, "chosen": chosen}
            runs.append(tried[chosen])
            continue
        lr = lr_search[cond]["chosen"] if cond in lr_search else cfg.lr
        runs.append(_run_or_resume(cond, seed, lr, cfg, prep, out, fp, shared, bar))
    bar.close()

    sizes = {p: len(v) for p, v in split.items()}
    sizes["train_windows"] = len(enc["train"].examples)
    sizes["dev_windows"] = len(enc["dev"].examples)
    sizes["test_windows"] = len(enc["test"].examples)
    top = Counter(enc["train"].labels).most_common(1)[0][0]
    majority = {p: float(np.mean(np.array(enc[p].labels) == top)) for p in ("dev", "test")}
    return CrossDomainResult(cfg.model, cfg.task, data.path, settings, prep.label_names, sizes, splits_lines,
                             prep.mapping, runs, summarize(runs), data.skipped, majority,
                             outside_alphabet=dict(data.outside_alphabet), test_labels=list(enc["test"].labels),
                             test_groups=_test_groups(prep), split_report=prep.split_report, lr_search=lr_search)


FINETUNED = ("pretrained", "scratch", "rand-embed", "shuffled")


def _tuned(cfg: CrossDomainConfig) -> list[str]:
    """The conditions whose learning rate is searched on dev (fine-tuned ones only; none without a grid)."""
    return [c for c in cfg.conditions if c in cfg.tune and c in FINETUNED] if cfg.lr_grid else []


def _run_or_resume(cond: str, seed: int, lr: float, cfg: CrossDomainConfig, prep: _Prepared, out: Path | None,
                   fp: str, shared: dict, bar) -> RunResult:
    """One (condition, seed, learning rate) run, or its saved result when an earlier invocation finished it.
    A searched condition's runs carry the rate in their folder name, so each rate resumes on its own."""
    bar.set_postfix_str(f"{cond} seed {seed}" + (f" lr {lr:g}" if cond in _tuned(cfg) else ""))
    name = f"{cond}-seed{seed}" + (f"-lr{lr:g}" if cond in _tuned(cfg) else "")
    run_dir = out / "runs" / name if out else None
    saved = finished_run(run_dir, fp) if run_dir else None
    run = RunResult(**saved) if saved is not None else None
    if run is None:
        run = _one_run(cond, seed, replace(cfg, lr=lr), prep, run_dir, shared)
        if run_dir:
            mark_finished(run_dir, fp, asdict(run))
    bar.update(1)
    return run


def _test_groups(prep: _Prepared) -> list[str] | None:
    return [prep.data.groups[i] for i in prep.split["test"]] if prep.data.groups is not None else None


def _one_run(cond: str, seed: int, cfg: CrossDomainConfig, prep: _Prepared, run_dir: Path | None,
             shared: dict) -> RunResult:
    n_labels, enc, groups = len(prep.label_names), prep.enc, _test_groups(prep)
    if cond == "composition":
        if "composition" not in shared:    # deterministic: one fit serves every seed
            y = [prep.label_names.index(l) for l in prep.data.labels]
            shared["composition"] = _composition(seed, cfg, prep.data, prep.split, y, n_labels, groups)
        return replace(shared["composition"], seed=seed)
    if cond == "frozen":
        if "features" not in shared:       # one forward pass over every split serves all the probes' seeds
            t0 = time.perf_counter()
            base = build_model("pretrained", cfg.model, n_labels, seed, cfg.trust_remote_code).base_model
            shared["features"] = {p: features(base, e, precision=cfg.precision) for p, e in enc.items()}
            shared["feature_seconds"] = time.perf_counter() - t0
        return _probe(seed, cfg, shared["features"], enc, n_labels, shared["feature_seconds"], groups)
    return _finetune(cond, seed, cfg, enc, n_labels, prep.pad_id, run_dir, groups)


def save(result: CrossDomainResult, out_dir: str | Path) -> CrossDomainResult:
    """results.json; its `figures` list is what report.figures.crossdomain_figures drew first, if anything."""
    save_results(out_dir, SCHEMA, result.payload())
    return result


def summary_rows(summary: dict) -> list[dict]:
    """One table row per condition of a result's `summary` (this run's, or a recorded run's)."""
    return [{"condition": c, "runs": s["n"], "test accuracy": f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}",
             "test macro-F1": f"{s['macro_f1_mean']:.3f} ± {s['macro_f1_std']:.3f}",
             "best epoch": "-" if s["best_epoch_mean"] is None else f"{s['best_epoch_mean']:.1f}",
             "seconds/run": f"{s['wall_time_mean']:.0f}"} for c, s in summary.items()]


def result_from_json(doc: dict) -> CrossDomainResult:
    """A CrossDomainResult back from its results.json (to re-draw or report an earlier run)."""
    fields = {k: doc[k] for k in CrossDomainResult.__dataclass_fields__ if k in doc and k != "runs"}
    return CrossDomainResult(**{**fields, "runs": [RunResult(**r) for r in doc["runs"]]})
