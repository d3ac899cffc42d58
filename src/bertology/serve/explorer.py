"""What each view of `bertology serve` computes, on models kept in memory.

Every experiment is the library's own function; this module only parses the page's input, enforces the input
limits, keeps loaded models (and what is expensive to recompute per model: the language means and the
neighbour candidates) in a small cache, and serialises model work:
- senses: `senses.run`, the run of `bertology senses`, on the typed sentences (`SensesSettings.typed`) with the
  preloaded embedder (its `vectors` give every layer's heatmap and PCA without a second pass);
- fill-mask: `mlm.run`, the run of `bertology fill-mask`, with the preloaded MLM;
- neighbours: `align.usable_words` + `align.contextual_vectors` (the alignment experiment's word vectors: the
  mean contextual vector over a word's occurrences in Tatoeba), MUSE en-zh as the gold;
- language vector: `langvec.language_means` + `langvec.translate`, scored with `langvec.word_hits` against the
  constant-output baseline of the report's verdict (`langvec.constant_output_baseline`);
- attention: `attention.attention_maps` (every layer and head, eager attention).

Every result carries its yardstick: the measure's fixed range, the chance level or baseline the report's
verdicts use, and n with a warning when it is small.

Concurrency: one lock guards every model call (PyTorch already uses all cores for one forward pass, and two
models in flight would double the memory); at most `max_queue` requests may wait for it, and none longer than
`queue_timeout` seconds. Beyond that the request is refused with `Busy` (HTTP 503) instead of piling up.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import check_number
from ..errors import UserError


class InputError(UserError):
    """A bad input from the page; `field` names the input the message belongs next to, `switch` a model of the
    picker that can do what this one cannot (the page offers a button to switch to it)."""

    def __init__(self, message: str, field: str | None = None, switch: str | None = None):
        super().__init__(message, (field,) if field else ())
        self.field = field
        self.switch = switch


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
    max_attention_tokens: int = 48      # the page draws layers x heads matrices of tokens x tokens

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


# The lecture's examples, the first one the model's vocabulary can read is pre-filled (see Explorer.examples);
# the page offers them all as chips, the lecture's first.
SENSES_SETS = ("apple-zh", "apple-en")
FILL_MASK_EXAMPLES = ("今天買了蘋[MASK]來吃", "今天买了苹[MASK]来吃", "the capital of france is [MASK].")
NEIGHBOUR_EXAMPLE = "apple"
NEIGHBOUR_CHIPS = ("apple", "蘋果", "water", "水", "dog", "book")
LANGVEC_EXAMPLE = "there is no one who can help me."   # the lecture: "no one" -> 無人, "me" -> 我
LANGVEC_CHIPS = (LANGVEC_EXAMPLE, "i ate an apple today.", "the weather is good today.")
LANGVEC_ALPHA = 2.0                                   # docs/align.md: most Chinese output at alpha 2
ATTENTION_EXAMPLES = (("我吃了蘋果", "果"), ("蘋果發表了新手機", "果"), ("i ate an apple", "apple"),
                      ("apple released a new phone", "apple"))
# Under this many occurrences per sense, separation and 2-means purity are noise (4 sentences gave purity 1.00).
MIN_PER_SENSE = 6
CHINESE_PROBE = "蘋果"       # a model that reads these without [UNK] can run the lecture's Chinese examples
VIEWS = ("senses", "fill-mask", "neighbours", "langvec", "attention")
NEEDS_MLM = {"fill-mask": "fill-mask needs a masked-LM head", "langvec": "the language vector needs a masked-LM "
             "head to read the shifted states back as tokens"}
# `label: sentence` (an ASCII colon and a space, or a full-width colon), the label one word of at most 24
# characters, so "12:30" and "he said: ..." stay sentences; `label<TAB>sentence` works too.
LABEL_LINE = re.compile(r"^([^\s:：]{1,24})(?::\s+|：\s*)(\S.*)$")


class ModelQueue:
    """One model call at a time, a bounded number waiting, a bounded wait."""

    def __init__(self, max_queue: int, timeout: float):
        self.max_queue, self.timeout = max_queue, timeout
        self._model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.inside = 0                     # waiting + running

    @contextmanager
    def admitted(self):
        """Counted against the queue's bound, but not waiting for the model: for answers from memory (the model
        list, the examples), so the page can draw itself while a model loads."""
        with self._count_lock:
            if self.inside >= self.max_queue:
                raise Busy(f"the server is busy ({self.inside} requests in the queue); try again in a moment")
            self.inside += 1
        try:
            yield
        finally:
            with self._count_lock:
                self.inside -= 1

    def idle(self) -> bool:
        return self.inside == 0

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
        self._readable: dict[str, dict] = {}          # per model: which of the lecture's examples it reads
        self.add_models(config.models)
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._data: dict[str, Any] = {}
        self._data_lock = threading.Lock()
        self.seconds: dict[str, float] = {}           # measured: "load:MODEL", "neighbours:MODEL:en-zh", ...

    # ------------------------------------------------------------------------------------------- models
    def add_models(self, names: list[str]) -> None:
        """Offer these models in the picker, each described as {name, description, mlm, layers, chinese}; a model
        that cannot be found raises UserError. The page can only ever name one of these: the server resolves
        nothing else, so no path sent by a browser is opened."""
        from ..core.models import ALIASES, has_mlm_head, load_config, load_tokenizer

        for name in dict.fromkeys(names):
            if name in self.choices:
                continue
            cfg = load_config(name, self.config.trust_remote_code)
            alias = ALIASES.get(name)
            tok = load_tokenizer(name, self.config.trust_remote_code)   # its own copy: read here, never shared

            def readable(text: str, tok=tok) -> bool:
                body = text.replace("[MASK]", " ")
                return tok.unk_token_id not in tok(body, add_special_tokens=False)["input_ids"]
            from ..io.sentences import DEMO_SETS

            self._readable[name] = {
                "senses": next((s for s in SENSES_SETS if readable(DEMO_SETS[s][1])), SENSES_SETS[-1]),
                "fill_mask": next((t for t in FILL_MASK_EXAMPLES if readable(t)), FILL_MASK_EXAMPLES[-1]),
                "mask_token": tok.mask_token}
            self.choices[name] = {"name": name, "mlm": has_mlm_head(name), "layers": int(cfg.num_hidden_layers),
                                  "heads": int(getattr(cfg, "num_attention_heads", 0) or 0),
                                  "chinese": readable(CHINESE_PROBE),
                                  "description": alias.description if alias else "local model directory",
                                  "load_estimate_s": _load_estimate(name)}

    def cannot(self, name: str) -> dict[str, str]:
        """{view: why this model cannot run it}, for the views it cannot run."""
        choice = self.choices[name]
        return {view: why for view, why in NEEDS_MLM.items() if not choice["mlm"]}

    def suggest(self, view: str, chinese: bool = False, other_than: str | None = None) -> str | None:
        """The first model of the picker that can run `view` (and reads Chinese, when asked), else None."""
        for name, choice in self.choices.items():
            if name != other_than and view not in self.cannot(name) and (choice["chinese"] or not chinese):
                return name
        return None

    def model_list(self) -> list[dict]:
        out = []
        for name, choice in self.choices.items():
            load = self.seconds.get(f"load:{name}")
            out.append({**choice, "cannot": self.cannot(name), "loaded": name in self._loaded,
                        "load_estimate_s": round(load, 1) if load else choice["load_estimate_s"],
                        "prepared": sorted(k.split(":", 2)[2] for k in self.seconds
                                           if k.startswith("prepare:") and k.split(":", 2)[1] == name)})
        return out

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
        start = time.perf_counter()
        self._loaded[name] = self._load(name)
        self.seconds[f"load:{name}"] = time.perf_counter() - start
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

    def preload(self, stop: threading.Event | None = None, pause: float = 0.5) -> list[str]:
        """Background warm-up after start: load the first `max_loaded` models of the picker, then the default
        model's language means and English->Chinese neighbour index (the slow first calls of those views). Each
        step is its own queue turn and waits until no request is queued, so a reader's click goes first.
        Returns the steps done; a step that fails (no data, say) is skipped, its view will say why."""
        names = list(self.choices)[: self.config.max_loaded]
        steps = [(f"load {n}", lambda n=n: self._model(n)) for n in names]
        steps += [(f"language means {names[0]}", lambda: self._language_means(self._model(names[0]))),
                  (f"neighbours en-zh {names[0]}", lambda: self._candidates(self._model(names[0]), "en-zh"))]
        done = []
        for what, step in steps:
            while not self.queue.idle():
                if stop is not None and stop.wait(pause):
                    return done
                if stop is None:
                    time.sleep(pause)
            if stop is not None and stop.is_set():
                return done
            try:
                with self.queue.turn():
                    step()
                done.append(what)
            except (UserError, Busy):
                continue
        return done

    def _timed(self, key: str, build):
        start = time.perf_counter()
        value = build()
        self.seconds[key] = time.perf_counter() - start
        return value
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
        """The lecture's examples, each view pre-filled with the first one this model's vocabulary covers, and
        the chips the page offers per view (the lecture's first). Read from memory: no model is loaded."""
        from ..io.sentences import DEMO_SETS

        with self.queue.admitted():
            name = model or next(iter(self.choices))
            if name not in self.choices:
                raise InputError(f"unknown model {str(name)[:60]!r}: choose one of {', '.join(self.choices)}",
                                 "model")
            readable, choice = self._readable[name], self.choices[name]
        mask = readable["mask_token"]

        def masked(text: str) -> str:
            return text.replace("[MASK]", mask) if mask and mask != "[MASK]" else text
        senses_chips = [{"label": f"{DEMO_SETS[s][1]} ({s})", **_senses_example(s)}
                        for s in ("apple-zh", "apple-en", "zh-da", "en-bank", "en-spring")]
        senses_chips.insert(2, {"label": "first experiment: one sentence per sense", "target": "apple",
                                "sentences": "fruit: I ate an apple\ncompany: Apple released a phone"})
        return {"model": name,
                "senses": {"set": readable["senses"], **_senses_example(readable["senses"]), "chips": senses_chips},
                "fill_mask": {"text": masked(readable["fill_mask"]), "k": 5,
                              "chips": [{"label": t, "text": masked(t)} for t in FILL_MASK_EXAMPLES]},
                "neighbours": {"word": NEIGHBOUR_EXAMPLE, "k": 5,
                               "chips": [{"label": w, "word": w} for w in NEIGHBOUR_CHIPS]},
                "langvec": {"sentence": LANGVEC_EXAMPLE, "layer": max(0, choice["layers"] - 1),
                            "alpha": LANGVEC_ALPHA, "chips": [{"label": t, "sentence": t} for t in LANGVEC_CHIPS]},
                "attention": {"sentence": ATTENTION_EXAMPLES[0][0] if choice["chinese"] else ATTENTION_EXAMPLES[2][0],
                              "target": ATTENTION_EXAMPLES[0][1] if choice["chinese"] else ATTENTION_EXAMPLES[2][1],
                              "chips": [{"label": s, "sentence": s, "target": t} for s, t in ATTENTION_EXAMPLES]}}

    # ------------------------------------------------------------------------------------------- senses
    def parse_sentences(self, text: str) -> tuple[list[str], list[str]]:
        """One sentence a line, optionally labelled `label: sentence` (or `label<TAB>sentence`); a pasted
        `label<TAB>sentence` header is skipped."""
        lim = self.limits
        lines = [l.strip() for l in str(text).splitlines() if l.strip()]
        if lines and lines[0].lower().split("\t") == ["label", "sentence"]:
            lines = lines[1:]
        if not lines:
            raise InputError("enter at least one sentence (one a line, optionally label: sentence)", "sentences")
        if len(lines) > lim.max_sentences:
            raise InputError(f"{len(lines)} sentences: at most {lim.max_sentences} per request", "sentences")
        sents, labels = [], []
        for i, line in enumerate(lines, 1):
            label, _, sentence = line.rpartition("\t")
            labelled = LABEL_LINE.match(line) if not label else None
            if labelled:
                label, sentence = labelled.groups()
            label, sentence = label.strip(), sentence.strip()
            if not sentence:
                raise InputError(f"line {i}: the sentence after the label is empty", "sentences")
            if len(sentence) > lim.max_sentence_chars:
                raise InputError(f"line {i}: {len(sentence)} characters, at most {lim.max_sentence_chars}",
                                 "sentences")
            sents.append(sentence)
            labels.append(label)
        return sents, labels

    def _check_target(self, sents: list[str], target: str) -> str:
        from ..core.embed import target_pattern

        lim = self.limits
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
        return target

    def unreadable(self, lm: LoadedModel, view: str, error: UserError, field: str) -> InputError:
        """A [UNK] refusal, with the model to switch to when the text is Chinese and another model reads it."""
        from ..io.cjk import has_cjk

        message = str(error)
        other = self.suggest(view, chinese=True, other_than=lm.name) if "[UNK]" in message else None
        if other and (has_cjk(message) or not self.choices[lm.name]["chinese"]):
            message += f" — {lm.name} reads little Chinese: switch to {other}"
        return InputError(message, field, switch=other)

    def senses(self, model: str | None, sentences: str, target: str) -> dict:
        from ..experiments import senses
        from ..experiments.configs import SensesSettings
        from ..metrics import cosine_matrix

        sents, labels = self.parse_sentences(sentences)
        target = self._check_target(sents, target)
        with self.queue.turn():
            lm = self._model(model)
            # `bertology senses` at its defaults on the typed set ("sentences", the box, named in its messages)
            cfg = SensesSettings(model=lm.name, sentences="sentences", typed=tuple(zip(labels, sents)),
                                 target=target, precision=self.config.precision,
                                 trust_remote_code=self.config.trust_remote_code)
            try:
                res = senses.run(cfg, embedder=lm.embedder)
            except UserError as e:   # the embedder refuses targets it reads as [UNK]
                raise self.unreadable(lm, "senses", e, "target") from None
        layers = []
        previous = None
        occ_labels = np.array([o["label"] for o in res.occurrences])
        different = occ_labels[:, None] != occ_labels[None, :]
        for layer in range(res.vectors.shape[0]):
            vecs = res.vectors[layer]
            points, explained = _pca_2d(vecs, previous)
            previous = points
            sim = cosine_matrix(vecs)
            # the cosine across senses: the answer when each sense has one sentence (no within-sense pair)
            across = float(sim[different].mean()) if different.any() else None
            layers.append({"layer": layer, "similarity": np.round(sim, 4).tolist(), "across": across,
                           "pca": np.round(points, 4).tolist(), "explained": explained})
        return {"model": lm.name, "target": target, "sentences": sents, "occurrences": res.occurrences,
                "labels": sorted(set(labels)), "scores": [s.__dict__ for s in res.layers],
                "best_layer": res.best_layer, "layers": layers, **_senses_yardstick(res, occ_labels)}

    # ------------------------------------------------------------------------------------------- fill-mask
    def fill_mask(self, model: str | None, text: str, k: int) -> dict:
        from ..core.adapter import count_masks, display_tokens, mask_text
        from ..experiments import mlm
        from ..experiments.configs import FillMaskConfig

        lim = self.limits
        text = str(text).strip()
        k = _int(k, "k", 1, lim.max_k)
        with self.queue.turn():
            lm = self._model(model)
            if lm.mlm is None:
                other = self.suggest("fill-mask")
                raise InputError(f"model {lm.name!r} has no masked-LM head, so it cannot fill in blanks"
                                 + (f": switch to {other}" if other else "; pick a model pretrained with MLM (e.g. "
                                    "one from `bertology pretrain`)"), "model", switch=other)
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
            cfg = FillMaskConfig(model=lm.name, texts=[text], top_k=k, precision=self.config.precision,
                                 trust_remote_code=self.config.trust_remote_code)     # `bertology fill-mask`
            res = mlm.run(cfg, mlm=lm.mlm, tokenizer=lm.tokenizer)
            ids = lm.tokenizer(mask_text(text, lm.tokenizer))["input_ids"]
            tokens = display_tokens(lm.tokenizer, ids)
            unknown = [t for t, i in zip(tokens, ids) if i == lm.tokenizer.unk_token_id]
        masks = res.items[0]["masks"]
        filled = list(tokens)
        for m in masks:       # the sentence as the model reads it, each blank filled with its top answer
            filled[m["position"]] = m["candidates"][0]["token"]
        blanks = {m["position"] for m in masks}
        body = [t for p, (t, i) in enumerate(zip(filled, ids)) if p in blanks or i not in lm.tokenizer.all_special_ids]
        out = {"model": lm.name, "text": text, "k": k, "masks": masks, "tokens": tokens,
               "filled": _join_pieces(body), "mask_positions": [m["position"] for m in masks], "warning": None}
        if unknown:
            other = self.suggest("fill-mask", chinese=True, other_than=lm.name)
            out["warning"] = (f"{len(unknown)} token{'s' * (len(unknown) > 1)} read as {lm.tokenizer.unk_token}: "
                              f"the model does not see that text" + (f"; switch to {other}" if other else ""))
            out["switch"] = other
        return out

    # ------------------------------------------------------------------------------------------- neighbours
    def _candidates(self, lm: LoadedModel, direction: str) -> _Candidates:
        """The other language's dictionary words usable with this model (in the corpus, no [UNK]), as the
        alignment experiment's word vectors at every layer; built once per model and direction."""
        from ..experiments.align import WordSet, contextual_vectors, usable_words
        from ..io.cjk import has_cjk

        if direction not in lm.neighbour_index:
            start = time.perf_counter()
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
            self.seconds[f"prepare:{lm.name}:neighbours-{direction}"] = time.perf_counter() - start
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
        out = {"model": lm.name, "word": word, "query": query, "direction": direction, "gold": gold,
               "gold_ranked": [words[i] for i in gold_idx], "candidates": len(words),
               "occurrences": len(src.occurrences[query]), "layers": out_layers, "notice": None, "switch": None,
               **_rank_chance(len(gold_idx), len(words))}
        if gold and not gold_idx:
            other = self.suggest("neighbours", chinese=True, other_than=lm.name)
            out["notice"] = (f"{lm.name} reads none of the translations ({', '.join(gold[:4])}) without [UNK] or "
                             f"finds none in the corpus, so their rank cannot be shown"
                             + (f": switch to {other}" if other else ""))
            out["switch"] = other
        return out

    # ------------------------------------------------------------------------------------------- language vector
    def langvec(self, model: str | None, sentence: str, layer, alpha) -> dict:
        from ..experiments.langvec import translate

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
                other = self.suggest("langvec")
                raise InputError(f"model {lm.name!r} has no masked-LM head: the shifted hidden states need one to "
                                 f"be read back as tokens" + (f"; switch to {other}" if other else
                                                              "; pick a model pretrained with MLM"),
                                 "model", switch=other)
            layer = _int(layer, "layer", 0, lm.num_layers)
            means = self._language_means(lm)
            direction = means["zh"][layer] - means["en"][layer]
            before = translate(lm.mlm, lm.tokenizer, [sentence], layer, None)[0]
            after = translate(lm.mlm, lm.tokenizer, [sentence], layer, alpha * direction if alpha else None)[0]
        score = self._translation_score(before, after)
        return {"model": lm.name, "sentence": sentence, "layer": layer, "alpha": alpha,
                "tokens": [t for t, _ in before], "before": [o for _, o in before], "after": [o for _, o in after],
                "distance": round(float(np.linalg.norm(direction)), 4),
                "mean_sentences": min(self.config.mean_sentences, self.config.corpus_lines), **score}

    # ------------------------------------------------------------------------------------------- attention
    def attention(self, model: str | None, sentence: str, target: str = "") -> dict:
        """Every layer's and head's attention for the sentence (`attention.attention_maps`), the target's
        tokens marked (their rows: what the target attends to). Probabilities: the scale is 0..1."""
        from ..experiments.attention import attention_maps

        lim = self.limits
        sentence, target = str(sentence).strip(), str(target).strip()
        if not sentence:
            raise InputError("enter a sentence", "sentence")
        if len(sentence) > lim.max_text_chars:
            raise InputError(f"the sentence has {len(sentence)} characters, at most {lim.max_text_chars}", "sentence")
        if target and target not in sentence:
            raise InputError(f"the target {target!r} is not in the sentence", "target")
        with self.queue.turn():
            lm = self._model(model)
            n = len(lm.tokenizer(sentence)["input_ids"])
            if n > lim.max_attention_tokens:
                raise InputError(f"the sentence is {n} tokens long: at most {lim.max_attention_tokens} here (each "
                                 f"head draws a tokens x tokens matrix)", "sentence")
            try:
                res = attention_maps(lm.embedder.model, lm.tokenizer, sentence, lm.name)
            except UserError as e:
                raise InputError(str(e), "sentence") from None
        positions = res.token_positions(target) if target else []
        unk = lm.tokenizer.unk_token
        out = {"model": lm.name, "sentence": sentence, "target": target, "tokens": res.tokens,
               "target_positions": positions, "layers": res.num_layers, "heads": res.num_heads, "range": [0, 1],
               "attentions": np.round(res.attentions, 3).tolist(), "warning": None, "switch": None}
        if unk and unk in res.tokens:
            other = self.suggest("attention", chinese=True, other_than=lm.name)
            out["warning"] = (f"{res.tokens.count(unk)} token(s) read as {unk}: the model does not see that text"
                              + (f"; switch to {other}" if other else ""))
            out["switch"] = other
        if target and not positions:
            out["warning"] = f"the target {target!r} covers no token of the sentence"
        return out

    def _language_means(self, lm: LoadedModel) -> dict:
        from ..experiments.langvec import language_means

        if lm.language_means is None:
            start = time.perf_counter()
            corpora = self._corpora()
            lm.language_means = language_means(lm.embedder, {"en": corpora["en"], "zh": corpora["zh"]},
                                               list(range(lm.num_layers + 1)), self.config.mean_sentences)
            self.seconds[f"prepare:{lm.name}:langvec"] = time.perf_counter() - start
        return lm.language_means

    def _translation_score(self, before: list[tuple[str, str]], after: list[tuple[str, str]]) -> dict:
        """The sentence scored as the report's verdict scores the test words: a single-token English word the
        MUSE dictionary knows is a hit when its output token is a translation (or a character of one). The
        yardsticks are the unshifted output's precision and the best constant output token's (for these words,
        chosen on them: the strongest constant there can be)."""
        from ..experiments.langvec import constant_output_baseline, translation_table, word_hits

        dictionary = self._dictionary("en-zh")       # outside _shared: its lock is not re-entrant
        translations = self._shared("langvec-translations", lambda: translation_table(dictionary))
        shifted, plain = word_hits([after], translations), word_hits([before], translations)
        words = [w for w, _ in shifted]
        out = {"scored": [{"word": w, "hit": bool(h), "translations": translations[w][:4]} for w, h in shifted],
               "precision": None, "unshifted_precision": None, "constant_token": None, "constant_precision": None}
        if words:
            token, hits = constant_output_baseline(words, translations)
            out.update(precision=float(np.mean([h for _, h in shifted])),
                       unshifted_precision=float(np.mean([h for _, h in plain])),
                       constant_token=token, constant_precision=float(hits.mean()))
        return out


def _senses_yardstick(res, occ_labels: np.ndarray) -> dict:
    """What a senses result is measured against: occurrences per sense (n) and a warning under MIN_PER_SENSE,
    the report's verdict baselines (the purity of a position-only feature clustered the same way, and the
    majority share, the purity of one cluster), the measures' fixed ranges, and what to add when there is no
    separation to show."""
    from types import SimpleNamespace

    from ..experiments.senses import position_features, position_purity

    counts = {k: int((occ_labels == k).sum()) for k in sorted(set(occ_labels.tolist()))}
    named = {k: v for k, v in counts.items() if k}
    out = {"counts": counts, "ranges": {"cosine": [0, 1], "separation": [0, 1]}, "warning": None, "message": None,
           "position_purity": None, "majority": None}
    if len(named) < 2:
        out["message"] = ("give the sentences two or more labels to measure separation, one a line as "
                          "`fruit: I ate an apple` (or pick a label from the list)")
    elif min(named.values()) < 2:
        out["message"] = ("one sentence per sense: the curve shows the cosine across the senses per layer (lower = "
                          "more different); separation needs 2 sentences per sense, and 6 to trust it")
    if named and len(named) >= 2 and min(named.values()) < MIN_PER_SENSE:
        out["warning"] = (f"n = {', '.join(f'{k} {v}' for k, v in named.items())}: under {MIN_PER_SENSE} "
                          f"occurrences per sense, separation and purity are noise (4 sentences can give purity "
                          f"1.00); add sentences")
    if len(named) >= 2 and len(occ_labels) > len(named):
        occ = [SimpleNamespace(**o) for o in res.occurrences]
        out["position_purity"] = position_purity(position_features(res.sentences, occ), occ_labels)
        out["majority"] = max(counts.values()) / len(occ_labels)
    return out


def _rank_chance(n_gold: int, n_candidates: int) -> dict:
    """Where a random ranking puts the best of `n_gold` translations among `n_candidates` words: the expected
    rank (N + 1) / (g + 1) (about half the candidates for one translation) and the expected reciprocal rank,
    `metrics.random_mrr`, the alignment verdict's "random ranking" baseline."""
    from ..metrics import random_mrr

    if not n_gold:
        return {"chance_rank": None, "chance_mrr": None}
    return {"chance_rank": round((n_candidates + 1) / (n_gold + 1), 1),
            "chance_mrr": round(random_mrr([n_gold], n_candidates), 5)}


def _join_pieces(tokens: list[str]) -> str:
    """Tokens as text: `##` pieces glued to the previous one, CJK characters without spaces between them."""
    from ..io.cjk import has_cjk

    text = ""
    for t in tokens:
        if t.startswith("##"):
            text += t[2:]
        elif text and not (has_cjk(t) and has_cjk(text[-1])):
            text += " " + t
        else:
            text += t
    return text


def _senses_example(name: str) -> dict:
    """A built-in sense set as the sentences box shows it: `label: sentence` lines, and its target."""
    from ..io.sentences import DEMO_SETS, read_sentences

    sents, labels, _ = read_sentences(name)
    return {"target": DEMO_SETS[name][1], "sentences": "\n".join(f"{l}: {s}" for l, s in zip(labels, sents))}


def _load_estimate(name: str) -> float:
    """Seconds a first load may take, before one was measured: about 2 s plus 1 s per 10 MB of weights on a
    laptop CPU (zh-en-mini's 50 MB loaded in 6.8 s on this project's 2 busy cores)."""
    from pathlib import Path

    from ..core.models import resolve_model

    folder = Path(resolve_model(name))
    if not folder.is_dir():
        return 10.0
    size = sum(f.stat().st_size for f in folder.iterdir() if f.suffix in (".safetensors", ".bin"))
    return round(2 + size / 10e6, 1)


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
