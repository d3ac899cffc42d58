"""Every experiment's settings, declared once (bertology.config): the configs the experiments run from and the
CLI's options are generated from (bertology.cli_options).

They live here, apart from the experiments, because this module imports no torch: `bertology --help` builds
every command's options from them and stays fast. Each experiment module re-exports its own config (e.g.
`experiments.pretrain.PretrainConfig`), and reads whatever these say; data assembly that a config names
(corpora + dictionary, QA samples) is a method that calls io/ or the experiment lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import (PRECISIONS, PREDICT_PRECISIONS, DataDir, Model, ModelRun, OptionalOut, Out, Precision, Resume,
                      Seed, Threads, Validated, setting)
from ..errors import UserError
from ..io.dictionaries import SCRIPT_CONVERSIONS
from ..io.bilingual import BilingualData
from ..io.squad import QADataset
from .cbow import SEGMENTS

# crossdomain's conditions (experiments/crossdomain.py runs them)
CONDITIONS = ("pretrained", "scratch", "rand-embed", "shuffled", "frozen", "composition")
# how sub-tokens become one word vector (core.embed pools them)
POOLINGS = ("mean", "first")

CORPUS_HELP = ("LANG=SOURCE[#COLUMN][@MAX_LINES], repeatable. SOURCE: a text file (one sentence or paragraph a line, "
               ".gz ok), a directory of them, a SQuAD JSON (its paragraphs), or a data set name (e.g. "
               "tatoeba-cmn-eng, squad-train, corpus-zh). #COLUMN picks a tab-separated column (Tatoeba: "
               "en=tatoeba-cmn-eng#0 zh=tatoeba-cmn-eng#1); @N keeps at most N lines of that source.")
ALPHA_HELP = "Language sampling smoothing: p ∝ share^alpha (1 proportional, 0 uniform; mBERT used 0.7)."
CONVERSIONS = ("auto", "none", *SCRIPT_CONVERSIONS)
DICT_HELP = ("Bilingual dictionary: a MUSE file (source<TAB>target) or CC-CEDICT (.zip/.u8), or a data set name "
             "(muse-en-zh, muse-zh-en, cedict).")
CONVERT_HELP = ("Chinese script conversion of the dictionary with opencc: auto (t2s when the dictionary is "
                "Traditional and the corpus Simplified, s2t the reverse), t2s, s2t, none.")
QA_DATA_HELP = ("SQuAD-format .json / .json.gz, or a data set name (squad-train, squad-dev, xquad-en, xquad-zh, "
                "drcd-dev, cmrc-trial).")
LANG_HELP = "Metric: en (SQuAD v1.1), zh (CMRC 2018, also DRCD) or auto (zh when the contexts are mostly CJK)."


# --------------------------------------------------------------------------------------------- pretraining
@dataclass(kw_only=True)
class TokenizerConfig(Seed, DataDir, Out):
    """`bertology tokenizer train`."""

    corpus: list[str] = setting(help=CORPUS_HELP, short="-c")
    vocab_size: int = setting(16000, "Vocabulary size, special tokens included.", low=1)
    lowercase: bool = setting(True, "Lower-case (and strip accents) or keep case.", flag="--lowercase/--cased")
    alpha: float = setting(0.7, ALPHA_HELP, low=0, high=1)
    budget_tokens: int = setting(20_000_000, "Approximate tokens of text sampled (over all languages) to train "
                                             "on.", low=1, aliases=("budget",))
    alphabet_size: int | None = setting(None, "Distinct characters kept as tokens, the most frequent (default: "
                                              "a third of --vocab-size); the rest are [UNK].", low=1)


@dataclass
class PretrainConfig(Precision, Seed, DataDir, Resume):
    """`bertology pretrain` (the settings recorded in results.json; PretrainCommand adds the CLI's own)."""

    corpora: list[str] = setting(help=CORPUS_HELP, flag="--corpus", short="-c", aliases=("corpus",))
    out_dir: str = setting(help="Output directory (model, checkpoint, logs, results.json, figures).",
                           flag="--out", short="-o", kind="out_dir", aliases=("out",))
    tokenizer: str | None = setting(None, "Tokenizer or model directory to use; default: train a WordPiece "
                                          "vocabulary on the corpora.")
    init_from: str | None = setting(None, "Warm start: copy this BERT's weights (alias, directory or hub id) and "
                                          "extend its vocabulary with the run's tokenizer's new tokens (see "
                                          "docs/pretrain.md).", metavar="MODEL")   # see experiments.warmstart
    vocab_size: int = setting(16000, "Size of the vocabulary trained when no --tokenizer (a third of it "
                                     "characters: Chinese in both scripts needs ~5,000).", low=1)
    lowercase: bool = setting(True, "Vocabulary trained when no --tokenizer: lower-case and strip accents, or "
                                    "keep case.", flag="--lowercase/--cased")
    # None: `mini`, or with init_from the source's architecture (set in __post_init__)
    size: str | None = setting(None, "tiny 2x128, mini 4x256 (the default), small 4x512, medium 8x512, base "
                                     "12x768 (layers x hidden; heads = hidden/64). With --init-from: the source's "
                                     "architecture (a --size given must match it).")
    model_type: str = setting("bert", "Architecture of a model built from --size: bert (post-LN, as BERT) or "
                                      "roberta-prelayernorm (pre-LN); both load with AutoModelForMaskedLM.")
    config_file: str | None = setting(None, "A BERT config.json instead of --size.", flag="--config")
    max_sentences_per_lang: int | None = setting(None, "Keep a random N lines per language (data-scale knob).",
                                                 low=1)
    max_length: int = setting(128, "Packed sequence length in tokens (old spelling: --seq-len).", low=8)
    batch_size: int = setting(64, "Sequences per step per process.", low=1)
    grad_accum: int = setting(1, "Gradient accumulation steps.", low=1)
    max_steps: int = setting(1000, "Optimizer steps.", low=1)
    # was 5e-4 / 0.06: that schedule stalled on the plateau
    lr: float = setting(1e-3, "Peak learning rate (AdamW, linear warm-up and decay). 1e-3 leaves the BERT "
                              "plateau after ~20M tokens for `mini` (docs/pretrain.md).", above=0)
    warmup: float = setting(0.03, "Warm-up: fraction of steps (<1) or steps (>=1).", low=0)
    weight_decay: float = 0.01
    clip: float = 1.0
    # share of tokens predicted (Wettig et al. 2022: 40% helps small budgets); (0, 1) checked by pretrain
    mask_rate: float = setting(0.15, "Share of tokens masked and predicted, in (0, 1) (BERT: 0.15; 0.3-0.4 can "
                                     "suit small models, docs/pretrain.md).")
    # words (Chinese: jieba's) masked as wholes; see objective.WordBoundaries (old spelling: --whole-word-mask)
    whole_word: bool = setting(False, "Mask whole words: a word's pieces, a Chinese word's characters (jieba's "
                                      "words) together (old spelling: --whole-word-mask).")
    span: bool = setting(False, "SpanBERT spans of words (of tokens without --whole-word).")
    alpha: float = setting(0.7, ALPHA_HELP, low=0, high=1)
    # Cramming (Geiping & Goldstein 2022): none in one-epoch pretraining
    dropout: float = setting(0.0, "Hidden and attention dropout (default 0, as Cramming BERT found best for short "
                                  "single-epoch pretraining; Google's BERT used 0.1).", low=0, high=1)
    compile: bool = setting(False, "torch.compile the training step (after tens of seconds of compilation; "
                                   "falls back to eager if compilation fails). Off by default: its gain was "
                                   "measured only on a CPU with native bf16 (docs/performance.md).",
                            flag="--compile/--no-compile")    # see MaskedLMObjective
    eval_every: int = setting(500, "Steps between held-out evaluation, export of OUT/model and checkpoint.",
                              low=1)
    heldout_fraction: float = 0.01
    max_heldout: int = 200                    # held-out sequences per language, at most
    progress: bool = setting(True, "Show a progress bar.", flag="--progress/--no-progress")

    def __post_init__(self):
        if self.size is None and self.init_from is None:
            self.size = "mini"
        super().__post_init__()


@dataclass(kw_only=True)
class PretrainCommand(PretrainConfig, Threads):
    """`bertology pretrain`'s options: the run's config, and what the command does around it."""

    track_alignment: Path | None = setting(None, "Bilingual dictionary: log cross-lingual alignment (MRR) of the "
                                                 "model at every evaluation.", metavar="DICT")
    track_senses: str | None = setting(None, "A sense set (zh-guo, en-apple, ...): log sense separation and purity "
                                             "at every evaluation.", metavar="SET")

    def eval_hooks(self) -> list:
        """What to measure at each evaluation besides the loss: --track-alignment and --track-senses (experiments
        above pretrain, so the command adds them)."""
        hooks = []
        if self.track_alignment is not None:
            from .align import AlignmentTracker

            hooks.append(AlignmentTracker(self.track_alignment, self.corpora, self.out_dir, self.data_dir,
                                          self.tokenizer))
        if self.track_senses is not None:
            from .senses import SenseTracker

            hooks.append(SenseTracker(self.track_senses, seed=self.seed))
        return hooks


@dataclass(kw_only=True)
class FillMaskConfig(Model, Precision, Threads, OptionalOut):
    """`bertology fill-mask`."""

    texts: list[str] = setting(help="Texts with one or more [MASK], e.g. '今天買了蘋[MASK]來吃'.", argument=True,
                               shown_as="the text")
    top_k: int = setting(5, "Candidates shown per mask.", short="-k", low=1)
    convert: str | None = setting(None, "OpenCC conversion of the texts first, e.g. t2s (Traditional to "
                                        "Simplified) for a model trained on Simplified.")


@dataclass(kw_only=True)
class ClozeConfig(Model, Precision, Threads, DataDir, OptionalOut):
    """`bertology cloze`: top-1 / top-5 on an item set; with `baselines`, the report's verdict measurement."""

    items: str = setting("cloze-en-zh", "TSV with header lang<TAB>sentence<TAB>answer (one [MASK] a sentence, "
                                        "single-token answers), or a built-in set: cloze-en-zh, cloze-items (the "
                                        "verdict's: 40 zh in Traditional, 40 en).")
    add_simplified: bool = setting(False, "Also score a Simplified copy (OpenCC t2s) of every zh item that changes "
                                          "(the verdict does: cloze-items is Traditional, most Chinese text "
                                          "Simplified).")
    baselines: bool = setting(False, "Also score two n-gram predictors on the scorable items, counted with the "
                                     "model's tokenizer on the pretraining corpora (corpus-en, corpus-zh under "
                                     "--data-dir): the most frequent token, and the most frequent token after "
                                     "the one left of the blank; and the model's top-1 minus the stronger one "
                                     "with a bootstrap 95% CI over items.")
    baseline_lines: int = setting(20_000, "Corpus lines per language counted for --baselines, spread evenly over "
                                          "the corpus's files (the report: 20,000 quick, 200,000 --full).", low=1)


# --------------------------------------------------------------------------------------------- word senses
@dataclass(kw_only=True)
class CbowConfig(Seed, Out):
    """`bertology cbow`: a static word2vec CBOW baseline."""

    corpus: list[Path] = setting(help="Text file(s), one sentence a line (.gz ok); repeat for several.", short="-c")
    segment: str = setting("char", "Chinese segmentation: char (each character a token, as BERT), word (jieba) or "
                                   "auto (char).", choices=SEGMENTS)
    max_lines: int | None = setting(None, "Read at most this many lines per file.", low=1)
    dim: int = setting(100, "Vector size.", low=1, aliases=("vector_size",))
    window: int = setting(5, "Context words on each side.", low=1)
    min_count: int = setting(2, "Words seen fewer times are dropped.", low=1)
    epochs: int = setting(5, "Passes over the corpus.", low=1)
    target: list[str] = setting(help="Print and save nearest neighbours of these.", factory=list, short="-t")
    sentences: str | None = setting(None, "Also train on these sentences (a sentence file, or a built-in set: "
                                          "apple-zh, apple-en), so that `bertology senses --static` finds their "
                                          "target in the vocabulary.")


@dataclass(kw_only=True)
class SensesSettings(ModelRun):
    """What `senses.run` computes from: the occurrences of one target, embedded at every layer. `bertology senses`
    adds the output folder (SensesConfig); `bertology serve` runs these on the sentences typed in its page."""

    sentences: str = setting(help="TSV with header 'label<TAB>sentence' (label may be empty), plain text with one "
                                  "sentence a line, or a built-in set: apple-zh, apple-en.", short="-s")
    target: str | None = setting(None, "Word, string or CJK character to embed (default for built-in sets: "
                                       "果 / apple).", short="-t")
    layer: int | None = setting(None, "Layer of the similarity heatmap (0 = embeddings; default: last).", low=0)
    pool: str = setting("mean", "How sub-tokens become one vector: mean or first.", choices=POOLINGS)
    static: Path | None = setting(None, "Use a CBOW model (from `bertology cbow`) instead of the contextual "
                                        "model.")
    batch_size: int = setting(32, "Sentences per forward pass.", low=1)
    # Not a flag: sentences held in memory as (label, sentence) pairs (the explorer's sentences box), read instead
    # of the file `sentences`, which then only names them in messages. The front end that took them checked them
    # against its own limits; see senses.resolve_sentences for what is checked here.
    typed: tuple[tuple[str, str], ...] | None = None


@dataclass(kw_only=True)
class SensesConfig(SensesSettings, Out):
    """`bertology senses`: the settings and the output folder."""


# --------------------------------------------------------------------------------------------- cross-disciplinary transfer
@dataclass
class CrossDomainConfig(Model, Precision, Seed, DataDir, Resume):
    # seed also seeds the split, the subset and the mapping
    task: str = setting("splice", "splice | multiloc | composer, or a file: CSV/TSV of `sequence,label` (header "
                                  "optional), FASTA with `>ID LABEL` headers, splice.data.", short="-t")
    conditions: tuple[str, ...] = setting(CONDITIONS, "Comma list of: pretrained, scratch (same config, random "
                                                      "init), rand-embed (pretrained body, re-initialised word "
                                                      "embeddings), shuffled (every pretrained tensor's entries "
                                                      "permuted), frozen (linear probe), composition (no network: "
                                                      "logistic regression on k-mer counts, the no-order baseline).",
                                          sep=",", choices=CONDITIONS)
    seeds: int = setting(3, "Runs per condition (seeds SEED..SEED+K-1): mean ± std.", low=1)
    # The recipe (docs/crossdomain.md, "Choosing the recipe"): on all of splice, minilm's test accuracy after
    # 5 epochs was 0.866 at lr 5e-5 with 10% warm-up (the old default), 0.972 at 1e-4 and 0.975 at 2e-4 with 6%
    # warm-up; 4 epochs at 2e-4 (0.909) and 3 at 1e-4 with batch 16 (0.922) stopped short. Over 3 seeds, 5 epochs
    # gave 0.938 +- 0.034 (two seeds still climbing) and 8 epochs 0.952 +- 0.009: 8 is what converges.
    epochs: int = setting(8, "Maximum epochs per run (8: where minilm converges on splice over 3 seeds; "
                             "docs/crossdomain.md).", low=1)
    # early stopping: epochs without dev improvement (0, as None: never)
    patience: int | None = setting(2, "Stop after this many epochs without dev improvement (0: never).", low=0)
    batch_size: int = setting(32, "Sequences per step.", low=1)
    lr: float = setting(2e-4, "Peak learning rate (every condition not in --tune).", above=0)
    # Recipes are chosen on dev, never test: each condition in `tune` first trains at every learning rate of
    # `lr_grid` on the first seed and keeps the one with the best dev accuracy for all its seeds (the run at the
    # chosen rate is that seed's run). Tuning scratch is the fair comparison: a baseline left at the pretrained
    # model's recipe is a weak baseline.
    lr_grid: tuple[float, ...] = setting((), "Comma list of learning rates searched on DEV accuracy (first seed) "
                                             "for each condition in --tune, e.g. 1e-4,2e-4,5e-4; empty: no search.",
                                         sep=",", above=0)
    tune: tuple[str, ...] = setting(("scratch",), "Conditions whose learning rate --lr-grid chooses (comma list).",
                                    sep=",")
    warmup: float = setting(0.06, "Linear warm-up: a fraction of the steps (< 1) or a number of steps; then linear "
                                  "decay to 0.", low=0)
    max_length: int = setting(512, "Tokens per window ([CLS]/[SEP] included); longer sequences are cut into "
                                   "windows whose logits are averaged.", low=8)
    max_windows: int = setting(4, "Training windows per long sequence (evenly spaced; prediction uses all).", low=1)
    kmer: int = setting(1, "Map overlapping k-mers instead of single symbols.", low=1)
    symbols: str = setting("auto", "chars | tokens | auto (tokens if whitespace appears).",
                           choices=("chars", "tokens", "auto"))
    format: str = "auto"
    limit: int | None = setting(None, "Use a fixed stratified subset of this many examples.", low=1)
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    mapping: str | None = setting(None, "JSON symbol->token file (or an earlier results.json) instead of a fresh "
                                        "random mapping.")
    skip_bad: bool = setting(False, "Skip malformed rows (counted) instead of stopping.")
    progress: bool = True

    def __post_init__(self):
        self.patience = self.patience or None
        super().__post_init__()


@dataclass(kw_only=True)
class CrossDomainCommand(CrossDomainConfig, Threads, Out):
    """`bertology crossdomain`'s options: the experiment's config, where to write it and the threads."""


# --------------------------------------------------------------------------------------------- question answering
@dataclass
class QASettings(Validated):
    """How questions are cut into windows and answers searched (run_qa.py's defaults)."""

    # tokens per window (question + context + special tokens)
    max_length: int = setting(384, "Tokens per window, clamped to the model's maximum (old spelling: --max-len).",
                              low=8)
    doc_stride: int = setting(128, "Tokens shared by consecutive windows of a long context.", low=0)
    max_query_len: int = 64     # longer questions are cut (their start is kept)
    n_best: int = setting(20, "Spans kept per question (nbest.json).", low=1)
    max_answer_len: int = setting(30, "Longest answer, in tokens.", low=1)
    # logit: start + end logit, as run_qa.py; window-prob: log-probabilities normalised within each window, as
    # the HF pipeline (matters only when a context spans several windows: it makes their scores comparable)
    span_score: str = setting("logit", "How spans from different windows of one context compare: logit (start + "
                                       "end logit, as run_qa.py) or window-prob (probabilities normalised per "
                                       "window, as the Hugging Face pipeline).", choices=("logit", "window-prob"))
    # windows per inference batch (on a CPU, batching gains little beyond this, and a wider batch spans more
    # lengths, so more padding)
    eval_batch_size: int = setting(16, "Windows per inference batch.", low=1)
    # fp32 | bf16 | bf16-verified (bf16, then the near-ties re-run in fp32)
    precision: str = setting("fp32", "fp32, bf16 (~2-3x faster than fp32 here; may flip near-tie answers) or "
                                     "bf16-verified (bf16, then each question whose answer leads a different one by "
                                     "less than --verify-margin is re-run in fp32; gave the fp32 answer on every "
                                     "question measured, ~1.3-1.8x faster than fp32; see docs/qa.md).",
                             choices=PREDICT_PRECISIONS)
    # bf16-verified: questions whose best answer leads a span with a different answer text by less than this
    # (half of it if the two spans overlap; log-probability units) are re-run in fp32; inf re-runs every question
    # in fp32. docs/qa.md: how it was calibrated
    verify_margin: float = setting(0.3, "bf16-verified: score lead (in --span-score units: log-probabilities with "
                                        "window-prob, logits with logit) below which a question is re-run in fp32; "
                                        "0.3 covers every bf16 error measured (docs/qa.md).", low=0, inf_ok=True)


@dataclass
class TrainSettings(Seed, Resume):
    epochs: float = setting(2.0, "Training epochs (a fraction is allowed).", above=0)
    max_steps: int | None = setting(None, "Stop after this many optimizer steps (overrides --epochs).", low=1)
    batch_size: int = setting(16, "Training windows per step.", low=1)
    lr: float = setting(5e-5, "Peak learning rate (linear warm-up over 10%, then linear decay).", above=0)
    warmup: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    # steps between dev evaluations (None: once per epoch)
    eval_every: int | None = setting(None, "Steps between dev evaluations (default: each epoch).", low=1)
    checkpoint_every: int = setting(200, "Steps between resumable checkpoints.", low=1)
    patience: int | None = setting(None, "Stop after this many evaluations without dev F1 improvement.", low=0)


@dataclass(kw_only=True)
class QAScoreConfig(DataDir, OptionalOut):
    """`bertology qa score`."""

    data: str = setting(help=QA_DATA_HELP, short="-d")
    predictions: Path = setting(help='Official predictions JSON: {"question id": "answer text"}.', short="-p")
    lang: str = setting("auto", LANG_HELP, choices=("auto", "en", "zh"))
    skip_bad: bool = setting(False, "Skip malformed questions (counted) instead of stopping.")


@dataclass(kw_only=True)
class QAPredictConfig(QASettings, ModelRun, DataDir, Out):
    """`bertology qa predict` and `qa eval`: answer (and score) one data set."""

    data: str = setting(help=QA_DATA_HELP, short="-d")
    lang: str = setting("auto", LANG_HELP, choices=("auto", "en", "zh"))
    limit: int | None = setting(None, "Use a seeded random sample of this many questions per eval set.", low=1)
    skip_bad: bool = setting(False, "Skip malformed questions (counted) instead of stopping.")
    convert: str | None = setting(None, "t2s or s2t: convert the text with OpenCC first (predict: answers are "
                                        "mapped back to the original text; eval: also score the converted data, "
                                        "e.g. Traditional DRCD for a Simplified-trained model).",
                                  choices=("t2s", "s2t"))

    def read(self, require_answers: bool) -> QADataset:
        """The data set, a seeded sample of --limit questions (answers not checked against offsets: scored only)."""
        from .qa import load_data

        return load_data(self.data, self.data_dir, skip_bad=self.skip_bad, require_answers=require_answers,
                         check_offsets=False, limit=self.limit, seed=self.seed)


@dataclass(kw_only=True)
class QATrainConfig(QASettings, TrainSettings, ModelRun, DataDir, Out):
    """`bertology qa train`: fine-tune on one or more training sets, early-stopped on a dev set."""

    train: list[str] = setting(help=QA_DATA_HELP + " Repeat to concatenate.", factory=lambda: ["squad-train"],
                               short="-t")
    dev: str | None = setting(None, "Dev set for early stopping / best weights (" + QA_DATA_HELP + ")")
    max_train: int | None = setting(None, "Train on a seeded random sample of this many questions.", low=1)
    max_dev: int | None = setting(500, "Dev questions used for evaluation (sampled).", low=1)
    lang: str = setting("auto", LANG_HELP, choices=("auto", "en", "zh"))
    skip_bad: bool = setting(False, "Skip malformed questions (counted) instead of stopping.")
    # training runs in fp32 | bf16 (bf16-verified is a way to predict)
    precision: str = setting("fp32", Precision.__dataclass_fields__["precision"].metadata["help"],
                             choices=PRECISIONS)

    def settings(self) -> tuple[QASettings, TrainSettings]:
        """The library's two halves: how windows are cut and answers searched, and how to train."""
        from ..config import narrowed

        return narrowed(self, QASettings), narrowed(self, TrainSettings)

    def read(self, name: str, limit: int | None, **how) -> QADataset:
        """One data set, a seeded sample of `limit` questions."""
        from .qa import load_data

        return load_data(name, self.data_dir, skip_bad=self.skip_bad, limit=limit, seed=self.seed, **how)

    def read_sets(self) -> tuple[list[QADataset], QADataset | None]:
        """The training sets (each sampled to --max-train) and the dev set (to --max-dev), if any."""
        dev = self.read(self.dev, self.max_dev, check_offsets=False) if self.dev else None
        return [self.read(f, self.max_train) for f in self.train], dev


@dataclass(kw_only=True)
class QACrosslingualConfig(QATrainConfig):
    """`bertology qa crosslingual`: one fine-tuning run, evaluated zero-shot on every eval set."""

    train: list[str] = setting(help="LANG=FILE training set(s), e.g. en=squad-train (" + QA_DATA_HELP + ")",
                               factory=lambda: ["en=squad-train"], short="-t")
    eval: list[str] = setting(help="NAME=FILE eval set; repeat, e.g. --eval xquad-zh=xquad-zh --eval DRCD=drcd-dev.",
                              short="-e")
    dev: str | None = setting(None, "Dev set for best weights (default: none; the last weights are evaluated).")
    max_dev: int | None = setting(300, "Dev questions used (sampled).", low=1)
    limit: int | None = setting(None, "Use a seeded random sample of this many questions per eval set.", low=1)
    convert: str | None = setting(None, "t2s or s2t: also score each Chinese eval set after OpenCC conversion "
                                        "(Traditional DRCD for a Simplified model).", choices=("t2s", "s2t"))
    # off by default: a model given to `qa crosslingual` is fine-tuned, whatever it has. The report sets it, so that
    # `bertology report --model OUT/model` measures a model from `qa train` instead of training it again
    reuse_trained_head: bool = setting(False, "A --model that already has a trained span head (OUT/model of `qa "
                                              "train`) is evaluated as it is: no fine-tuning, no --train set read.")


# --------------------------------------------------------------------------------------------- cross-lingual alignment and language vectors
@dataclass(kw_only=True)
class BilingualSettings(DataDir):
    """Where align and langvec find their words: two monolingual corpora and a dictionary between them."""

    corpus: list[str] = setting(help="LANG=SOURCE[#COLUMN][@MAX_LINES], one or more per language (as for "
                                     "pretrain): monolingual text where the words are looked up, e.g. "
                                     "en=corpus-en zh=corpus-zh or en=tatoeba-cmn-eng#0 zh=tatoeba-cmn-eng#1.",
                                short="-c")
    dict_path: str = setting("muse-en-zh", DICT_HELP, flag="--dict", short="-d")
    dict_format: str = setting("auto", "auto, muse or cedict.", choices=("auto", "muse", "cedict"))
    convert: str = setting("auto", CONVERT_HELP, choices=CONVERSIONS)
    source: str | None = setting(None, "Source language (default: the first --corpus).")
    target: str | None = setting(None, "Target language (default: the second --corpus).")
    layers: str = setting("all", "'all' or comma-separated layer indices (0 = embeddings).", aliases=("layer",))

    def __post_init__(self):
        super().__post_init__()
        self.layer_list()       # refused now, before the corpora are read

    def layer_list(self) -> list[int] | None:
        """--layers as indices; None: every layer."""
        if self.layers.strip().lower() == "all":
            return None
        try:
            layers = [int(x) for x in self.layers.split(",") if x.strip()]
        except ValueError:
            layers = []
        if not layers:      # "" gave no layer at all, and a traceback further on
            raise UserError(f"`layers` {self.layers!r}: expected 'all' or comma-separated integers such as 0,2,4",
                            ("layers",))
        return layers

    def read(self, max_lines: int) -> BilingualData:
        """The corpora (at most max_lines a language), the source and target languages, and the dictionary
        between them, converted to the corpora's script as --convert says (io.bilingual assembles them)."""
        from ..io.bilingual import read_bilingual

        return read_bilingual(self.corpus, self.dict_path, self.source, self.target, self.convert, self.dict_format,
                              max_lines, self.data_dir)


@dataclass(kw_only=True)
class AlignConfig(BilingualSettings, ModelRun, DataDir, Out):
    """`bertology align`: word retrieval across languages, per layer."""

    k: int = setting(5, "Occurrences per word averaged into its vector (K).", low=1)
    max_words: int = setting(1000, "Source words evaluated (a seeded sample); 0 = all.", low=0)
    max_candidates: int = setting(0, "Candidate target words (golds always kept, the rest a seeded sample); 0 = "
                                     "every usable dictionary target.", low=0)
    max_lines: int = setting(50000, "Corpus lines read per language.", low=1)
    csls_k: int = setting(10, "Neighbourhood size of CSLS's hubness correction.", low=1)
    cbow: bool = setting(True, "Also train the per-language CBOW baseline.", flag="--cbow/--no-cbow")
    keep_identical: bool = setting(False, "Keep pairs whose two sides are the same string and words in the other "
                                          "side's script (skipped by default: a shared token is not a translation; "
                                          "needed for the identity-dictionary sanity check).")
    batch_size: int = setting(64, "Sentences per forward pass.", low=1)
    max_length: int = setting(64, "Tokens per window around an occurrence.", low=8)
    # the report's verdict (report.claims "align") needs this baseline; results.json gains `at_initialisation`
    # and `measures` (align.alignment_measures)
    at_initialisation: bool = setting(False, "Also measure the same architecture at initialisation (seeded fresh "
                                             "weights, same words) and the verdict's numbers: the layer chosen on "
                                             "half of the source words, its MRR on the other half against layer 0, "
                                             "the word alone, random vectors and the untrained model.")


@dataclass(kw_only=True)
class LangvecConfig(BilingualSettings, ModelRun, DataDir, Out):
    """`bertology langvec`: mean-shift translation over a grid of layers and α."""

    sentences: list[str] = setting(help="Source-language sentences to translate, LANG=SOURCE[#COL][@N].",
                                   factory=lambda: ["en=tatoeba-cmn-eng#0@200"])
    alphas: tuple[float, ...] = setting((0, 0.5, 1, 1.5, 2, 3), "Comma-separated α values swept.", sep=",")
    mean_sentences: int = setting(1000, "Sentences averaged per language mean.", low=1)
    max_lines: int = setting(20000, "Corpus lines read per language.", low=1)
    batch_size: int = setting(32, "Sentences per forward pass.", low=1)

    def read_sentences(self, source: str, target: str) -> list[str]:
        """The sentences to translate, which must be in the source language."""
        from ..io.corpora import read_corpora

        try:
            by_lang = read_corpora(self.sentences, self.data_dir)
        except UserError as e:      # a bad --sentences spec is named so, not as the --corpus it is read like
            raise UserError(str(e).replace("`corpus`", "`sentences`"),
                            tuple("sentences" if f == "corpus" else f for f in e.fields)) from None
        other = [lang for lang in by_lang if lang != source]
        if other:   # zh sentences were looked up in the en side of the dictionary: "precision nan over 0 words"
            raise UserError(f"`sentences` {other[0]}=...: the sentences to translate must be in the source "
                            f"language {source!r} (`source`; the dictionary is {source}-{target})",
                            ("sentences", "source"))
        return [s for lines in by_lang.values() for s in lines]


@dataclass(kw_only=True)
class DataScaleConfig(Precision, Threads, Seed, DataDir, Resume, Out):
    """`bertology align-scale`: the same pretraining on N and 5N sentences per language."""

    corpus: list[str] = setting(help="Training text, LANG=SOURCE[#COLUMN][@MAX_LINES], repeatable (as for "
                                     "pretrain). The alignment words are looked up in the first 20,000 lines of "
                                     "each language's first source.", short="-c")
    dict_path: str = setting("muse-en-zh", DICT_HELP, flag="--dict", short="-d")
    convert: str = setting("auto", CONVERT_HELP, choices=CONVERSIONS)
    sentences: tuple[int, ...] = setting((10000, 50000), "Sentences per language of each run (the lecture: 200K "
                                                         "vs 1,000K).", sep=",", low=1)
    size: str = setting("tiny", "Model preset shared by all runs (see `pretrain --help`).")
    max_steps: int = setting(2000, "Optimizer steps per run, the same for every size (old spelling: --steps).",
                             low=1)
    eval_every: int = setting(250, "Steps between loss + alignment evaluations.", low=1)
    batch_size: int = setting(32, "Sequences per step.", low=1)
    max_length: int = setting(64, "Packed sequence length (old spelling: --seq-len).", low=8)
    vocab_size: int = setting(8000, "WordPiece vocabulary, trained once on the largest sample.", low=1)
    lr: float = setting(1e-3, "Peak learning rate.", above=0)

    def __post_init__(self):
        super().__post_init__()
        if len(set(self.sentences)) != len(self.sentences):   # a size twice ran (and plotted) one run twice
            raise UserError(f"`sentences` {','.join(map(str, self.sentences))}: each size must be a whole number "
                            f"above 0, and given once", ("sentences",))

SCHEMA = "bertology.align-scale/1"


def named_sets(specs: list[str], flag: str) -> list[tuple[str, str]]:
    """'NAME=FILE' pairs (crosslingual's --train and --eval); a bare FILE or data set name is named after itself."""
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            name, value = Path(spec).stem if Path(spec).exists() else spec, spec
        if not name or not value:
            raise UserError(f"{flag} {spec!r}: expected NAME=FILE")
        if name in dict(out):       # the second set's scores and predictions file replaced the first's
            raise UserError(f"{flag} {spec!r}: the name {name!r} is given twice; name each set once (NAME=FILE)")
        out.append((name, value))
    return out
