"""Word senses: is BERT's vector for 果 in 蘋果 (fruit) different from 果 in 蘋果 (Apple the company)?

For every occurrence of a target in a set of labelled sentences we take its contextual vector at every layer
(embed.Embedder), then measure per layer how well the labels (senses) separate: mean cosine within a sense,
between senses, their difference (`separation`), the cosine silhouette and the purity of a 2-means clustering.
A static embedding (word2vec CBOW, `cbow.py`) gives every occurrence the same vector: separation 0 — the
lecture's point that BERT is a *contextualised*, "deep" CBOW.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io.sentences import DEMO_SETS, read_sentences
from ..core.embed import Embedder, Occurrence, find_occurrences
from ..errors import UserError
from ..metrics import cosine_matrix, sense_separation
from ..io.storage import save_results

SCHEMA = "bertology.senses/1"
# Memory bounds (2,000 sentences were killed at 23 GB: an n x n matrix as JSON and a heatmap 0.28 inch per
# occurrence). results.json keeps the full similarity matrix up to MAX_SAVED_MATRIX occurrences (500: ~3 MB of
# JSON); above it, the mean cosine per pair of labels only. The heatmap draws at most MAX_HEATMAP occurrences,
# a seeded sample stratified by label (its title says so).
MAX_SAVED_MATRIX = 500
MAX_HEATMAP = 200


@dataclass
class LayerScore:
    layer: int
    within: float | None
    between: float | None
    separation: float | None
    silhouette: float | None
    purity: float | None


@dataclass
class SensesResult:
    model: str
    target: str
    sentences: list[str]
    labels: list[str]
    occurrences: list[dict]                 # {sentence, label, start, end}
    layers: list[LayerScore]
    best_layer: int | None                  # the layer with the largest separation
    similarity: dict                        # {"layer": N, "matrix": [[...]]}, occurrences in file order
    static: bool = False                    # True: vectors from a static (CBOW) model
    neighbours: list[tuple[str, float]] = field(default_factory=list)   # static model only
    # [layers, occurrences, hidden] as embedded (contextual runs only); not saved, for callers that draw every
    # layer (bertology serve's layer slider) without a second forward pass
    vectors: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"model": self.model, "target": self.target, "static": self.static,
                "layers": self.layers, "best_layer": self.best_layer,
                "occurrences": self.occurrences, "sentences": self.sentences, "similarity": self.similarity,
                "neighbours": [{"word": w, "cosine": c} for w, c in self.neighbours]}


def _score(model_name: str, target: str, sentences, labels, occ: Sequence[Occurrence], vectors: np.ndarray,
           layer_ids: list[int], sim_layer: int, seed: int, static: bool = False,
           neighbours=()) -> SensesResult:
    occ_labels = [o.label for o in occ]
    scores = [LayerScore(layer=l, **sense_separation(vectors[i], occ_labels, seed)) for i, l in enumerate(layer_ids)]
    with_sep = [s for s in scores if s.separation is not None]
    best = max(with_sep, key=lambda s: s.separation).layer if with_sep else None
    return SensesResult(
        model=model_name, target=target, sentences=list(sentences), labels=list(labels),
        occurrences=[{"sentence": o.sentence, "label": o.label, "start": o.start, "end": o.end} for o in occ],
        layers=scores, best_layer=best,
        similarity=similarity_summary(vectors[layer_ids.index(sim_layer)], occ_labels, sim_layer, seed),
        static=static, neighbours=list(neighbours))


def heatmap_sample(labels: Sequence[str], limit: int = MAX_HEATMAP, seed: int = 0) -> list[int]:
    """Indices (sorted) of at most `limit` occurrences: all of them when they fit, else a seeded sample with
    each label's share kept (every label at least one), so the heatmap stays readable and its size bounded."""
    n = len(labels)
    if n <= limit:
        return list(range(n))
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    keys = sorted(by_label)
    quota = {k: max(1, int(limit * len(by_label[k]) / n)) for k in keys}
    while sum(quota.values()) > limit:      # many small labels: trim the largest quotas
        quota[max(keys, key=lambda k: quota[k])] -= 1
    picked = [int(i) for k in keys for i in rng.choice(by_label[k], min(quota[k], len(by_label[k])), replace=False)]
    return sorted(picked)


def similarity_summary(vectors: np.ndarray, labels: Sequence[str], layer: int, seed: int = 0) -> dict:
    """results.json's `similarity` at one layer [n, H]: the full cosine matrix up to MAX_SAVED_MATRIX
    occurrences; always the mean cosine per pair of labels and the heatmap's sample (with its own matrix when
    the full one is not saved). Memory O(n·H + MAX_SAVED_MATRIX²), whatever n is."""
    n = len(labels)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out: dict = {"layer": layer, "occurrences": n, "matrix": None}
    if n <= MAX_SAVED_MATRIX:
        out["matrix"] = np.round(cosine_matrix(vectors), 5).tolist()
    else:
        out["matrix_omitted"] = (f"{n} occurrences: the full matrix is saved up to {MAX_SAVED_MATRIX}; "
                                 f"per_label has the mean cosine of each pair of labels")
    sample = heatmap_sample(labels, MAX_HEATMAP, seed)
    out["heatmap"] = {"occurrences": sample, "sampled": len(sample) < n}
    if out["matrix"] is None:
        out["heatmap"]["matrix"] = np.round(cosine_matrix(vectors[sample]), 5).tolist()
    if len(set(labels)) > 1:
        sums = {k: unit[[i for i, l in enumerate(labels) if l == k]].sum(0) for k in sorted(set(labels))}
        count = {k: sum(1 for l in labels if l == k) for k in sums}
        # mean cosine over pairs of distinct occurrences: (|sum|^2 - n) / (n (n - 1)) within, sums' dot between
        out["per_label"] = {a: {b: (round(float((sums[a] @ sums[b] - count[a]) / (count[a] * (count[a] - 1))), 5)
                                    if count[a] > 1 else None) if a == b else
                                round(float(sums[a] @ sums[b] / (count[a] * count[b])), 5) for b in sums}
                            for a in sums}
    return out


def summary(result: SensesResult) -> str:
    """The result as the terminal shows it: the scores of each layer, the best layer, the neighbours."""
    fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
    lines = [f"layer {s.layer:2d}  within {fmt(s.within)}  between {fmt(s.between)}  separation "
             f"{fmt(s.separation)}  silhouette {fmt(s.silhouette)}  purity {fmt(s.purity)}" for s in result.layers]
    if result.best_layer is not None:
        lines.append(f"best layer: {result.best_layer}")
    if result.neighbours:
        lines.append("nearest neighbours: " + ", ".join(f"{w} {c:.2f}" for w, c in result.neighbours))
    return "\n".join(lines)


def word_senses(model: str, sentences: Sequence[str], labels: Sequence[str], target: str,
                layer: int | None = None, pool: str = "mean", precision: str = "fp32", batch_size: int = 32,
                seed: int = 0, trust_remote_code: bool = False, source: str = "sentences",
                embedder: Embedder | None = None) -> SensesResult:
    """Contextual vectors of `target` at every layer and how well they separate by label.

    `layer` picks the layer of the similarity matrix (default: the last layer)."""
    emb = embedder or Embedder(model, precision=precision, batch_size=batch_size, trust_remote_code=trust_remote_code)
    occ = find_occurrences(sentences, target, labels, source=source)
    vectors = emb.occurrence_vectors(sentences, occ, pool=pool, target=target, source=source)
    layer_ids = list(range(emb.num_layers + 1))
    sim_layer = emb.num_layers if layer is None else emb.check_layers([layer])[0]
    result = _score(model, target, sentences, labels, occ, vectors, layer_ids, sim_layer, seed)
    result.vectors = vectors
    return result


def load_embedder(cfg: "SensesSettings", progress: bool = True) -> Embedder:   # noqa: F821
    """The config's contextual model, loaded once to run several sentence sets (`run(cfg, embedder=...)`)."""
    return Embedder(cfg.model, precision=cfg.precision, batch_size=cfg.batch_size,
                    trust_remote_code=cfg.trust_remote_code, progress=progress)


def run(cfg: "SensesSettings", embedder: Embedder | None = None) -> SensesResult:   # noqa: F821 (configs imports us)
    """The senses of the config's target in its sentences (the file or set `sentences`, or the `typed` ones): on
    its contextual model, or on its CBOW model when `static` is given. `embedder`: an already loaded model to
    reuse (it must be cfg.model; `bertology serve` keeps one per model)."""
    sents, labels, source, target = resolve_sentences(cfg.sentences, cfg.target, cfg.typed)
    if cfg.static is not None:
        return static_senses(cfg.static, sents, labels, target, seed=cfg.seed, source=source)
    return word_senses(cfg.model, sents, labels, target, layer=cfg.layer, pool=cfg.pool, precision=cfg.precision,
                       batch_size=cfg.batch_size, seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
                       source=source, embedder=embedder)


def static_senses(cbow_path: str | Path, sentences: Sequence[str], labels: Sequence[str], target: str,
                  seed: int = 0, source: str = "sentences", neighbours: int = 10) -> SensesResult:
    """The same analysis with a static CBOW model: one vector per word type, so all occurrences coincide."""
    from .cbow import load_cbow, nearest_neighbours, word_vector

    kv, meta = load_cbow(cbow_path)
    occ = find_occurrences(sentences, target, labels, source=source)
    vec = word_vector(kv, target, meta["segment"])
    vectors = np.repeat(vec[None, None, :], len(occ), axis=1)       # [1 "layer", n_occ, dim]
    near = nearest_neighbours(kv, target, meta["segment"], neighbours)
    return _score(f"cbow:{cbow_path}", target, sentences, labels, occ, vectors, [0], 0, seed, static=True,
                  neighbours=near)


def save(result: SensesResult, out_dir: str | Path) -> Path:
    """results.json (the figures are drawn by report.figures.senses_figures)."""
    return save_results(out_dir, SCHEMA, result.to_json())


def check_senses(labels: Sequence[str], source: str) -> None:
    """A labelled file must give at least 2 senses with at least 2 sentences each: within-sense similarity needs
    a pair, and separation needs two senses. Unlabelled text (every label empty) is embedded without scores."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if set(counts) == {""}:
        return
    if len(counts) < 2:
        (only, n), = counts.items()
        raise UserError(f"{source}: only one sense, {only!r} ({n} sentences); at least 2 senses are needed")
    for label, n in counts.items():
        if n < 2:
            raise UserError(f"{source}: sense {label!r} has {n} sentence{'s' if n != 1 else ''}; "
                            f"at least 2 are needed")


def resolve_sentences(sentences: str, target: str | None,
                      typed: Sequence[tuple[str, str]] | None = None) -> tuple[list[str], list[str], str, str]:
    """A sentence file or demo set name, or `typed` (label, sentence) pairs named `sentences` in messages ->
    (sentences, labels, source, target).

    A file must give 2 sentences per sense (check_senses); typed pairs need not: the explorer answers one
    sentence per sense, or a single label, with what can be measured (the cosine across senses; the scores that
    need pairs are None) and says what to add, where a file for results.json is refused instead."""
    if typed is None:
        sents, labels, source = read_sentences(sentences)
        check_senses(labels, source)
    else:
        labels, sents, source = [label for label, _ in typed], [s for _, s in typed], sentences
        if not sents:
            raise UserError(f"{source}: no sentences")
    if target is None:
        if sentences not in DEMO_SETS:
            raise UserError("`target` is required (which word or character to embed)", fields=('target',))
        target = DEMO_SETS[sentences][1]
    return sents, labels, source, target


# --------------------------------------------------------------------------------------------- the sense study
# The verdict's measurement (report.claims "senses"), written before the numbers:
# - every built-in sense set (several targets per language; Chinese in Traditional and Simplified), each
#   position-balanced;
# - per set, the sentences of each sense are halved (seeded, each half keeping the sentence-initial share):
#   the layer is chosen on the dev half, and everything reported is measured on the test half;
# - the effect is separation at the chosen layer minus separation at layer 0 (the input embeddings, which see
#   the word and its position but no context), with a bootstrap CI over test sentences;
# - baselines: layer 0, a position-only feature (sentence-initial? relative position) clustered like the
#   vectors, and a static CBOW vector (separation 0 by construction).
SENSE_STUDY_SCHEMA = "bertology.sense-study/1"


def sense_set_variants(name: str) -> list[tuple[str, str, list[str], list[str], str]]:
    """(set name, target, sentences, labels, language) for a built-in sense set: Chinese sets as written
    (Traditional) and converted to Simplified with OpenCC."""
    from ..io.sentences import SENSE_SETS

    _, target, lang = SENSE_SETS[name]
    sents, labels, _ = read_sentences(name)
    out = [(name, target, sents, labels, lang)]
    if lang == "zh":
        import opencc

        cc = opencc.OpenCC("t2s")
        out.append((f"{name}-simplified", cc.convert(target), [cc.convert(s) for s in sents], labels, lang))
    return out


def position_features(sentences: Sequence[str], occ: Sequence[Occurrence]) -> np.ndarray:
    """Per occurrence: is it sentence-initial, and where does it start relative to the sentence's length."""
    return np.array([[float(sentences[o.sentence][:o.start].strip() == ""),
                      o.start / max(len(sentences[o.sentence]), 1)] for o in occ])


def position_purity(position: np.ndarray, labels: Sequence[str], seed: int = 0) -> float:
    """The verdict's position-only baseline: the 2-means purity of the standardised position features
    (`position_features`), clustered like the vectors: what where the word stands says about its sense."""
    from ..metrics import cluster_purity

    pos_std = (position - position.mean(0)) / np.maximum(position.std(0), 1e-9)
    return cluster_purity(pos_std, np.asarray(labels), seed)


def dev_test_halves(labels: Sequence[str], initial: Sequence[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a dev and a test half: within each (sense, sentence-initial) cell, a seeded shuffle dealt
    alternately, so both halves keep every sense and the position balance."""
    rng = np.random.default_rng(seed)
    dev, test = [], []
    cells: dict = {}
    for i, key in enumerate(zip(labels, initial)):
        cells.setdefault(key, []).append(i)
    for key in sorted(cells):
        idx = [cells[key][j] for j in rng.permutation(len(cells[key]))]
        dev += idx[0::2]
        test += idx[1::2]
    return np.array(sorted(dev)), np.array(sorted(test))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def score_sense_set(vectors: np.ndarray, labels: Sequence[str], position: np.ndarray, seed: int = 0,
                    reps: int = 2000) -> dict:
    """The claim's numbers for one set from its occurrence vectors [layers, n, H] (layer 0 = embeddings)."""
    from ..metrics import bootstrap_ci, cluster_purity, separation_from_similarity

    labels = np.asarray(labels)
    dev, test = dev_test_halves(labels, position[:, 0], seed)
    units = _unit(vectors.astype(np.float64))
    dev_sep = [separation_from_similarity(u[dev] @ u[dev].T, labels[dev]) for u in units]
    layer = int(np.argmax(dev_sep))
    sim_l = units[layer][test] @ units[layer][test].T
    sim_0 = units[0][test] @ units[0][test].T
    lab = labels[test]

    def effect(idx):
        sub = np.ix_(idx, idx)
        off = idx[:, None] != idx[None, :]         # a resampled sentence is not paired with its own copy
        same = (lab[idx][:, None] == lab[idx][None, :])
        if not (same & off).any() or not (~same).any():
            return float("nan")
        return float((sim_l[sub][same & off].mean() - sim_l[sub][~same].mean())
                     - (sim_0[sub][same & off].mean() - sim_0[sub][~same].mean()))

    sep_l, sep_0 = separation_from_similarity(sim_l, lab), separation_from_similarity(sim_0, lab)
    return {"layer": layer, "dev_separation": dev_sep, "separation": sep_l, "layer0": sep_0,
            "effect": sep_l - sep_0, "ci": bootstrap_ci(effect, len(test), reps, seed, strata=lab),
            "purity": cluster_purity(units[layer][test], lab, seed),
            "layer0_purity": cluster_purity(units[0][test], lab, seed),
            "position_purity": position_purity(position[test], lab, seed), "n_test": int(len(test)),
            "per_sense": {str(k): int((lab == k).sum()) for k in np.unique(lab)},
            "_effect_fn": effect, "_labels": lab}      # for the pooled bootstrap; not saved


@dataclass
class SenseStudy:
    model: str
    sets: list[dict]            # per set: name, target, language, the numbers of score_sense_set, or the reason
    pooled: dict                # per language: effect, ci, purity, position_purity, layer0, sets, not_applicable

    def to_json(self) -> dict:
        return {"model": self.model, "sets": self.sets, "pooled": self.pooled}


def _pooled(scored: list[dict], reps: int, seed: int) -> dict:
    """Mean over sets, with a CI from bootstrap replicates averaged across sets (each set resampled on its own)."""
    rng_seeds = range(seed, seed + len(scored))
    reps_per_set = []
    for s, sd in zip(scored, rng_seeds):
        rng = np.random.default_rng(sd)
        fn, lab = s["_effect_fn"], s["_labels"]
        groups = [np.flatnonzero(lab == k) for k in np.unique(lab)]
        reps_per_set.append([fn(np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups]))
                             for _ in range(reps)])
    means = np.nanmean(np.array(reps_per_set), axis=0)
    mean = lambda k: float(np.mean([s[k] for s in scored]))  # noqa: E731
    return {"effect": mean("effect"), "ci": [float(v) for v in np.nanpercentile(means, [2.5, 97.5])],
            "separation": mean("separation"), "layer0": mean("layer0"), "purity": mean("purity"),
            "layer0_purity": mean("layer0_purity"), "position_purity": mean("position_purity"),
            "sets": len(scored)}


def sense_study(model: str, languages: Sequence[str] = ("zh", "en"), seed: int = 0, precision: str = "fp32",
                trust_remote_code: bool = False, embedder: Embedder | None = None, reps: int = 2000) -> SenseStudy:
    """Every built-in sense set of `languages` on `model` (see the comment above SENSE_STUDY_SCHEMA). A set the
    tokenizer reads with more than core.vocab.UNKNOWN_LIMIT [UNK] tokens is not applicable, with the share."""
    from ..core.vocab import UNKNOWN_LIMIT, unknown_token_share
    from ..io.sentences import SENSE_SETS

    emb = embedder or Embedder(model, precision=precision, trust_remote_code=trust_remote_code, progress=False)
    sets, pooled = [], {}
    for lang in languages:
        scored = []
        for name in [n for n, (_, _, lg) in SENSE_SETS.items() if lg == lang]:
            for set_name, target, sents, labels, _ in sense_set_variants(name):
                row = {"name": set_name, "target": target, "language": lang}
                share = unknown_token_share(emb.tokenizer, sents)
                if share > UNKNOWN_LIMIT:
                    sets.append({**row, "not_applicable": f"{share:.0%} of its tokens are [UNK] to this "
                                                          f"model's vocabulary (limit {UNKNOWN_LIMIT:.0%})"})
                    continue
                occ = find_occurrences(sents, target, labels, source=set_name)
                vectors = emb.occurrence_vectors(sents, occ, target=target, source=set_name)
                s = score_sense_set(vectors, [o.label for o in occ], position_features(sents, occ), seed, reps)
                scored.append(s)
                sets.append({**row, **{k: v for k, v in s.items() if not k.startswith("_")}})
        if scored:
            pooled[lang] = _pooled(scored, reps, seed)
        else:
            why = next((s["not_applicable"] for s in sets if s["language"] == lang and "not_applicable" in s), "")
            pooled[lang] = {"not_applicable": f"every {lang} sense set: {why}"}
    return SenseStudy(str(model), sets, pooled)


class SenseTracker:
    """`pretrain --track-senses SET`: sense separation and 2-means purity of the model being trained, per layer,
    on a position-balanced sense set (io.sentences.SENSE_SETS), at every evaluation. An eval hook
    (`hook(model, step, metrics) -> dict`, as align's) that pretrain also asks to `prepare(tokenizer)` before
    training, when the run's tokenizer exists: a set it cannot read stops the run there, not hours later.

    Returns sense_separation / sense_purity / sense_layer (the layer of best separation, 0 = embeddings),
    sense_separation_l{i} and sense_purity_l{i} per layer, and sense_layer0 (separation of the embeddings,
    which see the word and its position but no context)."""

    def __init__(self, name: str, seed: int = 0):
        from ..io.sentences import SENSE_SETS

        if name not in SENSE_SETS:
            raise UserError(f"`track_senses` {name!r}: not a sense set; choose one of {', '.join(SENSE_SETS)}",
                            fields=("track_senses",))
        self.name, self.seed = name, seed
        self.variants = sense_set_variants(name)
        self.tokenizer, self.chosen, self.occurrences = None, None, None

    def prepare(self, tokenizer) -> None:
        """Choose the set as written, else its Simplified form: the first whose target the tokenizer reads
        without its unknown token and whose sentences stay within core.vocab.UNKNOWN_LIMIT [UNK]s."""
        from ..core.vocab import UNKNOWN_LIMIT, unknown_token_share

        why = []
        for set_name, target, sents, labels, _ in self.variants:
            ids = tokenizer(target, add_special_tokens=False)["input_ids"]
            share = unknown_token_share(tokenizer, sents)
            if not ids or tokenizer.unk_token_id in ids:
                why.append(f"{set_name}: target {target!r} is an unknown token")
            elif share > UNKNOWN_LIMIT:
                why.append(f"{set_name}: {share:.0%} of its tokens are unknown (limit {UNKNOWN_LIMIT:.0%})")
            else:
                self.tokenizer, self.chosen = tokenizer, (set_name, target, sents, labels)
                self.occurrences = find_occurrences(sents, target, labels, source=set_name)
                return
        raise UserError(f"`track_senses` {self.name}: the run's tokenizer cannot read it ({'; '.join(why)})",
                        fields=("track_senses",))

    def __call__(self, model, step: int, metrics: dict) -> dict:
        from ..metrics import cluster_purity, separation_from_similarity

        set_name, target, sents, _ = self.chosen
        base = getattr(model, "base_model", model)
        was_training = base.training
        emb = Embedder(base, self.tokenizer, precision="fp32", progress=False)     # fp32: weights never cast
        vectors = emb.occurrence_vectors(sents, self.occurrences, target=target, source=set_name)
        base.train(was_training)
        labels = [o.label for o in self.occurrences]
        units = _unit(vectors.astype(np.float64))
        seps = [separation_from_similarity(u @ u.T, labels) for u in units]
        purities = [cluster_purity(u, labels, self.seed) for u in units]
        best = int(np.argmax(seps))
        out = {"sense_separation": seps[best], "sense_purity": purities[best], "sense_layer": best,
               "sense_layer0": seps[0]}
        out.update({f"sense_separation_l{i}": v for i, v in enumerate(seps)})
        out.update({f"sense_purity_l{i}": v for i, v in enumerate(purities)})
        return out
