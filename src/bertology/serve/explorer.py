"""What each view of `bertology serve` computes, on models kept in memory.

Every experiment is the library's own function; this module only parses the page's input, enforces the input
limits, keeps loaded models (and what is expensive to recompute per model: the language means and the
neighbour candidates) in a small cache, and serialises model work:
- senses: `senses.word_senses` (its `vectors` give every layer's heatmap and PCA without a second pass);
- fill-mask: `mlm.fill_mask` with the preloaded MLM;
- neighbours: `align.usable_words` + `align.contextual_vectors` (the alignment experiment's word vectors: the
  mean contextual vector over a word's occurrences in Tatoeba), MUSE en-zh as the gold;
- language vector: `langvec.language_means` + `langvec.translate`.

Concurrency: one lock guards every model call (PyTorch already uses all cores for one forward pass, and two
models in flight would double the memory); at most `max_queue` requests may wait for it, and none longer than
`queue_timeout` seconds. Beyond that the request is refused with `Busy` (HTTP 503) instead of piling up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import check_number
from ..errors import UserError


class InputError(UserError):
    """A bad input from the page; `field` names the input the message belongs next to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, (field,) if field else ())
        self.field = field


class Busy(Exception):
    """The model queue is full, or a request waited too long for the model (HTTP 503: try again)."""


@dataclass(frozen=True)
class Limits:
    """Input limits: they keep one request to about a second of model time on a laptop CPU."""
    max_sentences: int = 64
    max_sentence_chars: int = 300
    max_occurrences: int = 128
    max_target_chars: int = 40
    max_text_chars: int = 300
    max_masks: int = 8
    max_k: int = 20
    max_alpha: float = 5.0
    max_word_chars: int = 40

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ServeConfig:
    models: list[str]                   # the picker's entries, in order; the first is the default
    data_dir: str | None = None         # where Tatoeba and MUSE are found (see storage.find_dataset)
    precision: str = "fp32"
    trust_remote_code: bool = False
    limits: Limits = field(default_factory=Limits)
    max_loaded: int = 2                 # models kept in memory (least recently used one is dropped)
    max_queue: int = 16                 # requests waiting for or holding the model; more are refused (503)
    queue_timeout: float = 60.0         # seconds a request may wait for the model before a 503
    corpus_lines: int = 5000            # Tatoeba lines per language: word occurrences and language means
    mean_sentences: int = 500           # sentences per language averaged into a language mean
    neighbour_candidates: int = 1000    # dictionary words of the other language ranked per query
    neighbour_occurrences: int = 2      # occurrences averaged into one word vector (align's K)


# The lecture's examples, the first one the model's vocabulary can read is pre-filled (see Explorer.examples).
SENSES_SETS = ("apple-zh", "apple-en")
FILL_MASK_EXAMPLES = ("今天買了蘋[MASK]來吃", "今天买了苹[MASK]来吃", "the capital of france is [MASK].")
NEIGHBOUR_EXAMPLE = "apple"
LANGVEC_EXAMPLE = "there is no one who can help me."   # the lecture: "no one" -> 無人, "me" -> 我
LANGVEC_ALPHA = 2.0                                   # docs/align.md: most Chinese output at alpha 2


class ModelQueue:
    """One model call at a time, a bounded number waiting, a bounded wait."""

    def __init__(self, max_queue: int, timeout: float):
        self.max_queue, self.timeout = max_queue, timeout
        self._model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.inside = 0                     # waiting + running

    @contextmanager
    def turn(self):
        with self._count_lock:
            if self.inside >= self.max_queue:
                raise Busy(f"the server is busy ({self.inside} requests in the queue); try again in a moment")
            self.inside += 1
        try:
            if not self._model_lock.acquire(timeout=self.timeout):
                raise Busy(f"waited {self.timeout:.0f} s for the model; the server is overloaded, try again")
            try:
                yield
            finally:
                self._model_lock.release()
        finally:
            with self._count_lock:
                self.inside -= 1


@dataclass
class LoadedModel:
    name: str
    tokenizer: Any
    embedder: Any                        # embed.Embedder over the base model
    mlm: Any | None                      # the masked-LM model (sharing the embedder's weights), or None
    num_layers: int
    language_means: dict | None = None   # {lang: [layers, hidden]}, computed on first use
    neighbour_index: dict = field(default_factory=dict)   # direction "en-zh" / "zh-en" -> _Candidates


@dataclass
class _Candidates:
    words: list[str]
    unit: np.ndarray                     # [layers, words, hidden], rows unit-normalised


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Explorer:
    """The server's state: the model list, loaded models, data, the queue. Methods return JSON-ready dicts
    and raise InputError (shown in the page) or Busy."""

    def __init__(self, config: ServeConfig):
        if not config.models:
            raise UserError("no model to serve")
        self.config = config
        self.limits = config.limits
        self.queue = ModelQueue(config.max_queue, config.queue_timeout)
        self.choices: OrderedDict[str, dict] = OrderedDict()
        self.add_models(config.models)
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._data: dict[str, Any] = {}
        self._data_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- models
    def add_models(self, names: list[str]) -> None:
        """Offer these models in the picker, each described as {name, description, mlm, layers}; a model that
        cannot be found raises UserError. The page can only ever name one of these: the server resolves
        nothing else, so no path sent by a browser is opened."""
        from ..core.models import ALIASES, has_mlm_head, load_config

        for name in dict.fromkeys(names):
            if name in self.choices:
                continue
            cfg = load_config(name, self.config.trust_remote_code)
            alias = ALIASES.get(name)
            self.choices[name] = {"name": name, "mlm": has_mlm_head(name), "layers": int(cfg.num_hidden_layers),
                                  "description": alias.description if alias else "local model directory"}

    def model_list(self) -> list[dict]:
        return list(self.choices.values())

    def _model(self, name: str | None) -> LoadedModel:
        """The loaded model for a picker entry (call inside queue.turn())."""
        name = name or next(iter(self.choices))
        if name not in self.choices:
            raise InputError(f"unknown model {str(name)[:60]!r}: choose one of {', '.join(self.choices)}", "model")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        while len(self._loaded) >= self.config.max_loaded:
            self._loaded.popitem(last=False)
        self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> LoadedModel:
        import torch

        from ..core.embed import Embedder
        from ..core.models import load_model, load_tokenizer

        trust = self.config.trust_remote_code
        tokenizer = load_tokenizer(name, trust)
        mlm = None
        if self.choices[name]["mlm"]:
            # One copy of the weights: the embedder runs the MLM's own encoder.
            mlm = load_model(name, "mlm", trust)
            mlm = mlm.to(torch.bfloat16 if self.config.precision == "bf16" else torch.float32).eval()
            emb = Embedder(mlm.base_model, tokenizer, precision=self.config.precision, progress=False)
        else:
            emb = Embedder(name, tokenizer, precision=self.config.precision, trust_remote_code=trust, progress=False)
        return LoadedModel(name, tokenizer, emb, mlm, emb.num_layers)

    # ------------------------------------------------------------------------------------------- data
    def _shared(self, key: str, build):
        with self._data_lock:
            if key not in self._data:
                self._data[key] = build()
            return self._data[key]

    def _corpora(self) -> dict[str, list[str]]:
        from ..io.corpora import read_corpora

        n = self.config.corpus_lines

        def build():
            try:
                return read_corpora([f"en=tatoeba-cmn-eng#0@{n}", f"zh=tatoeba-cmn-eng#1@{n}"], self.config.data_dir)
            except UserError as e:
                raise InputError(f"this view needs the Tatoeba en-zh sentences (tatoeba/cmn-eng.txt; start the "
                                 f"server with --data-dir DIR): {e}") from None
        return self._shared("corpora", build)

    def _dictionary(self, direction: str):
        """MUSE for this direction (en-zh or zh-en), converted to the corpus's script (MUSE's Chinese is
        Traditional, Tatoeba's Simplified)."""
        from ..io.bilingual import dictionary_for_corpora

        corpora = self._corpora()
        source_lang, target_lang = direction.split("-")

        def build():
            try:
                return dictionary_for_corpora(f"muse-{direction}", corpora, source_lang, target_lang,
                                              data_dir=self.config.data_dir)
            except UserError as e:
                raise InputError(f"this view needs the MUSE {direction} dictionary (muse/{direction}.txt; start "
                                 f"the server with --data-dir DIR): {e}") from None
        return self._shared(f"dictionary-{direction}", build)

    # ------------------------------------------------------------------------------------------- examples
    def examples(self, model: str | None) -> dict:
        """The lecture's examples, picking for each view the first one this model's vocabulary covers."""
        from ..io.sentences import DEMO_SETS, read_sentences

        with self.queue.turn():   # a fast tokenizer must not be used by two threads at once
            lm = self._model(model)
            tok = lm.tokenizer

            def readable(text: str) -> bool:
                body = text.replace("[MASK]", " ")
                return tok.unk_token_id not in tok(body, add_special_tokens=False)["input_ids"]
            senses_set = next((s for s in SENSES_SETS if readable(DEMO_SETS[s][1])), SENSES_SETS[-1])
            fill = next((t for t in FILL_MASK_EXAMPLES if readable(t)), FILL_MASK_EXAMPLES[-1])
        sents, labels, _ = read_sentences(senses_set)
        if tok.mask_token and tok.mask_token != "[MASK]":
            fill = fill.replace("[MASK]", tok.mask_token)
        return {"model": lm.name, "senses": {"set": senses_set, "target": DEMO_SETS[senses_set][1],
                                             "sentences": "\n".join(f"{l}\t{s}" for l, s in zip(labels, sents))},
                "fill_mask": {"text": fill, "k": 5},
                "neighbours": {"word": NEIGHBOUR_EXAMPLE, "k": 5},
                "langvec": {"sentence": LANGVEC_EXAMPLE, "layer": max(0, lm.num_layers - 1), "alpha": LANGVEC_ALPHA}}

    # ------------------------------------------------------------------------------------------- senses
    def parse_sentences(self, text: str) -> tuple[list[str], list[str]]:
        """One sentence a line, optionally `label<TAB>sentence`; a pasted `label<TAB>sentence` header is skipped."""
        lim = self.limits
        lines = [l.strip() for l in str(text).splitlines() if l.strip()]
        if lines and lines[0].lower().split("\t") == ["label", "sentence"]:
            lines = lines[1:]
        if not lines:
            raise InputError("enter at least one sentence (one a line, optionally label<TAB>sentence)", "sentences")
        if len(lines) > lim.max_sentences:
            raise InputError(f"{len(lines)} sentences: at most {lim.max_sentences} per request", "sentences")
        sents, labels = [], []
        for i, line in enumerate(lines, 1):
            label, _, sentence = line.rpartition("\t")
            label, sentence = label.strip(), sentence.strip()
            if not sentence:
                raise InputError(f"line {i}: the sentence after the label is empty", "sentences")
            if len(sentence) > lim.max_sentence_chars:
                raise InputError(f"line {i}: {len(sentence)} characters, at most {lim.max_sentence_chars}",
                                 "sentences")
            sents.append(sentence)
            labels.append(label)
        return sents, labels

    def senses(self, model: str | None, sentences: str, target: str) -> dict:
        from ..core.embed import target_pattern
        from ..metrics import cosine_matrix
        from ..experiments.senses import word_senses

        lim = self.limits
        sents, labels = self.parse_sentences(sentences)
        target = str(target).strip()
        if not target:
            raise InputError("enter the target word (or character) to follow through the sentences", "target")
        if len(target) > lim.max_target_chars:
            raise InputError(f"the target has {len(target)} characters, at most {lim.max_target_chars}", "target")
        pattern = target_pattern(target)
        counts = [len(pattern.findall(s)) for s in sents]
        missing = [i + 1 for i, c in enumerate(counts) if c == 0]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise InputError(f"the target {target!r} is missing from line{'s' * (len(missing) > 1)} {shown}: "
                             f"{sents[missing[0] - 1][:80]!r}", "sentences")
        if sum(counts) > lim.max_occurrences:
            raise InputError(f"{sum(counts)} occurrences of {target!r}: at most {lim.max_occurrences}", "target")
        with self.queue.turn():
            lm = self._model(model)
            try:
                res = word_senses(lm.name, sents, labels, target, source="sentences", embedder=lm.embedder)
            except UserError as e:   # the embedder refuses targets it reads as [UNK]
                raise InputError(str(e), "target") from None
        layers = []
        previous = None
        for layer in range(res.vectors.shape[0]):
            vecs = res.vectors[layer]
            points, explained = _pca_2d(vecs, previous)
            previous = points
            layers.append({"layer": layer, "similarity": np.round(cosine_matrix(vecs), 4).tolist(),
                           "pca": np.round(points, 4).tolist(), "explained": explained})
        return {"model": lm.name, "target": target, "sentences": sents, "occurrences": res.occurrences,
                "labels": sorted(set(labels)), "scores": [s.__dict__ for s in res.layers],
                "best_layer": res.best_layer, "layers": layers}

    # ------------------------------------------------------------------------------------------- fill-mask
    def fill_mask(self, model: str | None, text: str, k: int) -> dict:
        from ..core.adapter import count_masks
        from ..experiments.mlm import fill_mask

        lim = self.limits
        text = str(text).strip()
        k = _int(k, "k", 1, lim.max_k)
        with self.queue.turn():
            lm = self._model(model)
            if lm.mlm is None:
                raise InputError(f"model {lm.name!r} has no masked-LM head, so it cannot fill in blanks; pick a "
                                 f"model pretrained with MLM (e.g. one from `bertology pretrain`)", "model")
            mask = lm.tokenizer.mask_token
            if not text:
                raise InputError(f"enter a sentence with one or more {mask}", "text")
            if len(text) > lim.max_text_chars:
                raise InputError(f"the sentence has {len(text)} characters, at most {lim.max_text_chars}", "text")
            n = count_masks(text, lm.tokenizer)    # [MASK] stands for the model's own mask token too
            if n == 0:
                raise InputError(f"put at least one {mask} in the sentence: it marks the word to guess", "text")
            if n > lim.max_masks:
                raise InputError(f"{n} {mask}s: at most {lim.max_masks}", "text")
            res = fill_mask(lm.name, [text], top_k=k, precision=self.config.precision, mlm=lm.mlm,
                            tokenizer=lm.tokenizer)
        return {"model": lm.name, "text": text, "k": k, "masks": res.items[0]["masks"]}

    # ------------------------------------------------------------------------------------------- neighbours
    def _candidates(self, lm: LoadedModel, direction: str) -> _Candidates:
        """The other language's dictionary words usable with this model (in the corpus, no [UNK]), as the
        alignment experiment's word vectors at every layer; built once per model and direction."""
        from ..experiments.align import WordSet, contextual_vectors, usable_words
        from ..io.cjk import has_cjk

        if direction not in lm.neighbour_index:
            corpora, d = self._corpora(), self._dictionary(direction)
            target_lang = direction.split("-")[1]
            words = list(dict.fromkeys(t for _, t in d.pairs if has_cjk(t) == (target_lang == "zh")))
            ws = usable_words(words, corpora[target_lang], lm.tokenizer, self.config.neighbour_occurrences)
            keep = ws.words[:self.config.neighbour_candidates]
            if not keep:
                raise InputError(f"model {lm.name!r} reads none of the dictionary's {target_lang} words without "
                                 f"[UNK]: no candidates to rank", "word")
            sel = WordSet(keep, {w: ws.occurrences[w] for w in keep}, {})
            vecs = contextual_vectors(lm.embedder, corpora[target_lang], sel, list(range(lm.num_layers + 1)))
            lm.neighbour_index[direction] = _Candidates(keep, _unit(vecs))
        return lm.neighbour_index[direction]

    def neighbours(self, model: str | None, word: str, k: int) -> dict:
        from ..experiments.align import WordSet, contextual_vectors, usable_words
        from ..io.cjk import has_cjk

        lim = self.limits
        k = _int(k, "k", 1, lim.max_k)
        word = str(word).strip()
        if not word:
            raise InputError("enter an English or a Chinese word", "word")
        if len(word) > lim.max_word_chars:
            raise InputError(f"the word has {len(word)} characters, at most {lim.max_word_chars}", "word")
        direction = "zh-en" if has_cjk(word) else "en-zh"
        source_lang, target_lang = direction.split("-")
        corpora, d = self._corpora(), self._dictionary(direction)
        query = word.lower() if source_lang == "en" else word
        if source_lang == "zh" and d.convert:   # the dictionary was converted to the corpus's script: so is the word
            import opencc

            query = opencc.OpenCC(d.convert).convert(query)
        gold = [t for t in d.translations().get(query, []) if has_cjk(t) == (target_lang == "zh")]
        with self.queue.turn():
            lm = self._model(model)
            cands = self._candidates(lm, direction)
            layers = list(range(lm.num_layers + 1))
            src = usable_words([query], corpora[source_lang], lm.tokenizer, self.config.neighbour_occurrences)
            if query not in src.occurrences:
                raise InputError(f"{query!r}: {src.reasons.get(query, 'unusable')} (the {source_lang} side of "
                                 f"Tatoeba, first {self.config.corpus_lines} lines, model {lm.name!r})", "word")
            qv = _unit(contextual_vectors(lm.embedder, corpora[source_lang], src, layers)[:, 0])
            words, unit = cands.words, cands.unit
            extra = [g for g in gold if g not in set(words)]   # golds outside the capped list are ranked too
            if extra:
                ews = usable_words(extra, corpora[target_lang], lm.tokenizer, self.config.neighbour_occurrences)
                if ews.words:
                    sel = WordSet(ews.words, ews.occurrences, {})
                    ev = _unit(contextual_vectors(lm.embedder, corpora[target_lang], sel, layers))
                    words, unit = words + ews.words, np.concatenate([unit, ev], axis=1)
        gold_set = set(gold)
        gold_idx = [i for i, w in enumerate(words) if w in gold_set]
        out_layers = []
        for layer in layers:
            cos = unit[layer] @ qv[layer]
            top = np.argsort(-cos, kind="stable")[:k]
            rank = int((cos > cos[gold_idx].max()).sum()) + 1 if gold_idx else None
            out_layers.append({"layer": layer, "gold_rank": rank,
                               "neighbours": [{"word": words[i], "cosine": round(float(cos[i]), 4),
                                               "gold": words[i] in gold_set} for i in top]})
        return {"model": lm.name, "word": word, "query": query, "direction": direction, "gold": gold,
                "gold_ranked": [words[i] for i in gold_idx], "candidates": len(words),
                "occurrences": len(src.occurrences[query]), "layers": out_layers}

    # ------------------------------------------------------------------------------------------- language vector
    def langvec(self, model: str | None, sentence: str, layer, alpha) -> dict:
        from ..experiments.langvec import language_means, translate

        lim = self.limits
        sentence = str(sentence).strip()
        if not sentence:
            raise InputError("enter an English sentence", "sentence")
        if len(sentence) > lim.max_text_chars:
            raise InputError(f"the sentence has {len(sentence)} characters, at most {lim.max_text_chars}", "sentence")
        alpha = _float(alpha, "alpha", -lim.max_alpha, lim.max_alpha)
        with self.queue.turn():
            lm = self._model(model)
            if lm.mlm is None:
                raise InputError(f"model {lm.name!r} has no masked-LM head: the shifted hidden states need one to "
                                 f"be read back as tokens; pick a model pretrained with MLM", "model")
            layer = _int(layer, "layer", 0, lm.num_layers)
            if lm.language_means is None:
                corpora = self._corpora()
                lm.language_means = language_means(lm.embedder, {"en": corpora["en"], "zh": corpora["zh"]},
                                                   list(range(lm.num_layers + 1)), self.config.mean_sentences)
            direction = lm.language_means["zh"][layer] - lm.language_means["en"][layer]
            before = translate(lm.mlm, lm.tokenizer, [sentence], layer, None)[0]
            after = translate(lm.mlm, lm.tokenizer, [sentence], layer, alpha * direction if alpha else None)[0]
        return {"model": lm.name, "sentence": sentence, "layer": layer, "alpha": alpha,
                "tokens": [t for t, _ in before], "before": [o for _, o in before], "after": [o for _, o in after],
                "distance": round(float(np.linalg.norm(direction)), 4),
                "mean_sentences": min(self.config.mean_sentences, self.config.corpus_lines)}


def _int(value, name: str, lo: int, hi: int) -> int:
    return _number(value, name, lo, hi, integer=True)


def _float(value, name: str, lo: float, hi: float) -> float:
    return _number(value, name, lo, hi, integer=False)


def _number(value, name: str, lo: float, hi: float, integer: bool):
    """checks.check_number, as an InputError for the page: JSON's 1e400 reads as inf and Python's json module
    takes Infinity and NaN, which int() turned into an OverflowError (HTTP 500)."""
    if isinstance(value, str):      # a form field sent as text: "5" is 5, "inf" is still refused below
        value = value.strip()
    try:
        return check_number(name, value, low=lo, high=hi, integer=integer)
    except UserError as e:
        raise InputError(e.describe(lambda field: field), name) from None


def _pca_2d(vectors: np.ndarray, previous: np.ndarray | None) -> tuple[np.ndarray, list[float]]:
    """2-D PCA of the occurrence vectors; each axis's sign is flipped to agree with the previous layer's
    projection, so moving the layer slider does not mirror the picture for nothing.

    Computed from the n x n Gram matrix of the centred vectors (n occurrences << hidden size): its top
    eigenvectors scaled by the square roots of their eigenvalues are the principal-component scores."""
    n = vectors.shape[0]
    points = np.zeros((n, 2))
    if n < 2:
        return points, [0.0, 0.0]
    centred = vectors.astype(np.float64) - vectors.mean(0, dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)          # ascending
    eigenvalues = np.clip(eigenvalues[::-1], 0, None)
    eigenvectors = eigenvectors[:, ::-1]
    m = min(2, n)
    points[:, :m] = eigenvectors[:, :m] * np.sqrt(eigenvalues[:m])
    if previous is not None:
        for j in range(2):
            if float(points[:, j] @ previous[:, j]) < 0:
                points[:, j] *= -1
    total = float(eigenvalues.sum())
    explained = [round(float(eigenvalues[j] / total), 4) if total > 0 and j < m else 0.0 for j in range(2)]
    return points, explained
