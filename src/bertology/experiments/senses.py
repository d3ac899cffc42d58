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
    matrix = cosine_matrix(vectors[layer_ids.index(sim_layer)])
    return SensesResult(
        model=model_name, target=target, sentences=list(sentences), labels=list(labels),
        occurrences=[{"sentence": o.sentence, "label": o.label, "start": o.start, "end": o.end} for o in occ],
        layers=scores, best_layer=best, similarity={"layer": sim_layer, "matrix": np.round(matrix, 5).tolist()},
        static=static, neighbours=list(neighbours))


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
    return _score(model, target, sentences, labels, occ, vectors, layer_ids, sim_layer, seed)


def static_senses(cbow_path: str | Path, sentences: Sequence[str], labels: Sequence[str], target: str,
                  seed: int = 0, source: str = "sentences", neighbours: int = 10) -> SensesResult:
    """The same analysis with a static CBOW model: one vector per word type, so all occurrences coincide."""
    from .cbow import load_cbow, word_vector

    kv, meta = load_cbow(cbow_path)
    occ = find_occurrences(sentences, target, labels, source=source)
    vec = word_vector(kv, target, meta["segment"])
    vectors = np.repeat(vec[None, None, :], len(occ), axis=1)       # [1 "layer", n_occ, dim]
    near = nearest_neighbours(kv, target, meta["segment"], neighbours)
    return _score(f"cbow:{cbow_path}", target, sentences, labels, occ, vectors, [0], 0, seed, static=True,
                  neighbours=near)


def nearest_neighbours(kv, target: str, segment: str, k: int = 10) -> list[tuple[str, float]]:
    from .cbow import word_vector

    vec = word_vector(kv, target, segment)
    pieces = set(target.lower().split()) | ({target.lower()} if segment != "char" else set(target))
    return [(w, float(c)) for w, c in kv.similar_by_vector(vec, topn=k + len(pieces)) if w not in pieces][:k]


def save(result: SensesResult, out_dir: str | Path) -> Path:
    """results.json (the figures are drawn by report.figures.senses_figures)."""
    return save_results(out_dir, SCHEMA, result.to_json())


def resolve_sentences(sentences: str, target: str | None) -> tuple[list[str], list[str], str, str]:
    """A sentence file or demo set name -> (sentences, labels, source, target)."""
    sents, labels, source = read_sentences(sentences)
    if target is None:
        if sentences not in DEMO_SETS:
            raise UserError("`target` is required (which word or character to embed)", fields=('target',))
        target = DEMO_SETS[sentences][1]
    return sents, labels, source, target
