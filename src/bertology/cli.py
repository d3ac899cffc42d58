"""The `bertology` command: a thin layer that parses options, calls one experiment function, saves its
result (results.json + figures) and turns user mistakes (`UserError`) into exit code 2 with one line.

Each experiment module exposes a plain function returning a result object; nothing here computes.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .checks import check_number
from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="See why BERT works: the experiments of 'Self-supervised learning: BERT explained' "
                       "(Hung-yi Lee, ML 2021) on any BERT-family model. Every command writes --out DIR/"
                       "results.json (versioned schema, see docs/results.md) and PNG figures.")

# Options shared by many commands ---------------------------------------------------------------------------
def _out_dir(value: Optional[Path]) -> Optional[Path]:
    """--out must be (or become) a directory: refuse a file, or a path under a file, before any work starts
    (otherwise the mistake shows only when the results are written, after hours of training)."""
    if value is not None:
        for p in (value, *value.parents):
            if p.exists():
                if not p.is_dir():
                    raise typer.BadParameter(f"{p} is a file, not a directory")
                _check_writable(p)
                break
    return value


def _check_writable(folder: Path) -> None:
    """Write (and remove) a probe file where --out will be made: a read-only or full folder fails now, not
    when the results are written after the work (os.access trusts permission bits that root ignores and a
    read-only mount overrides)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".bertology-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise typer.BadParameter(f"cannot write in {folder} ({e.strerror or e})") from None


def _data_dir(value: Optional[Path]) -> Optional[Path]:
    """--data-dir must be a folder: a file was silently ignored (the data sets were looked up elsewhere)."""
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise typer.BadParameter(f"{value} is a file, not a directory")
    return value


def _measured(value: Optional[float]) -> str:
    """A score as printed: None (nothing to measure it on) is said, not shown as 0.000."""
    return "not measured" if value is None else f"{value:.3f}"


def _t2s_or_s2t(value: Optional[str]) -> Optional[str]:
    """qa's --convert: checked before the model loads and the data is read."""
    if value not in (None, "t2s", "s2t"):
        raise typer.BadParameter(f"{value!r}: must be t2s or s2t")
    return value


def _number(**bounds):
    """A float flag's callback: checks.check_number (finite, in range) before any work. click reads "inf",
    "nan" and 1e400 as floats and its min=/max= let inf and nan through (an infinite --lr trained to NaN)."""
    def callback(value: Optional[float]) -> Optional[float]:
        if value is not None:
            try:
                check_number("value", value, **bounds)
            except UserError as e:
                raise typer.BadParameter(str(e).replace("`value` ", "")) from None
        return value
    return callback


_positive = _number(above=0)          # a learning rate, a number of epochs: click's min= allows the bound
_non_negative = _number(low=0)        # a warm-up, a margin
_fraction = _number(low=0, high=1)    # a smoothing exponent, a dropout rate


MODEL_HELP = "Hugging Face id, local model directory, or an alias (see `bertology models`)."
ModelOpt = typer.Option("minilm", "--model", "-m", help=MODEL_HELP)
OutOpt = typer.Option(..., "--out", "-o", callback=_out_dir, help="Output directory (results.json, figures).")
PrecisionOpt = typer.Option("fp32", "--precision", help="fp32 or bf16 (bf16: ~2-4x faster on CPUs with AMX/AVX512-BF16).")
DataDirOpt = typer.Option(None, "--data-dir", envvar="BERTOLOGY_DATA", callback=_data_dir,
                          help="Directory holding data sets by name (default: ./data, ../shared/data).")
TrustOpt = typer.Option(False, "--trust-remote-code", help="Allow model code from the hub to run (off by default).")
SeedOpt = typer.Option(0, "--seed", min=0, help="Random seed (runs with the same seed repeat exactly).")


# One spelling per meaning across commands (Hugging Face's scripts say max_seq_length / max_steps). The old
# spellings still work: main() rewrites them before parsing, so they stay out of --help.
OLD_SPELLINGS = {"--max-len": "--max-length", "--seq-len": "--max-length", "--steps": "--max-steps"}
# Library fields whose flag is not simply the field's name with dashes.
FIELD_FLAGS = {"max_len": "--max-length", "seq_len": "--max-length"}


def flag_name(field: str) -> str:
    """The option that sets a library field: `lr` -> --lr, `max_len` -> --max-length."""
    return FIELD_FLAGS.get(field) or "--" + field.replace("_", "-")


def _new_spellings(argv: List[str]) -> List[str]:
    """Old flag spellings (`--seq-len 64`, `--steps=10`) in today's spelling."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        out.append(OLD_SPELLINGS.get(name, name) + eq + value if name in OLD_SPELLINGS else arg)
    return out


def describe_error(error: UserError) -> str:
    """A library error in the CLI's terms: its fields as flag names."""
    return error.describe(flag_name)


@contextlib.contextmanager
def _flags(**names: str):
    """Library fields that this command sets under another flag (align's `layer` list is its --layers,
    langvec's --sentences are read as a `corpus`): errors raised inside say this command's flag, not
    flag_name's default, which would point the user at an option the command does not have."""
    try:
        yield
    except UserError as e:
        raise UserError(e.describe(lambda field: names.get(field) or flag_name(field))) from None


@app.callback()
def _root():
    """See why BERT works (run `bertology COMMAND --help` for each experiment)."""


def _set_threads(threads: Optional[int]) -> None:
    """--threads N: cap torch's intra-op threads (pin jobs that share a machine); None keeps torch's default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command("models")
def models_cmd(
    path: Optional[str] = typer.Option(None, "--path", metavar="ALIAS",
                                       help="Print the local directory of this alias and nothing else."),
):
    """List model aliases and whether each is available offline."""
    from rich.console import Console
    from rich.table import Table

    from .core.models import alias_path, list_models

    if path is not None:
        print(alias_path(path))
        return

    table = Table("alias", "offline", "hub id", "description")
    for row in list_models():
        table.add_row(row["alias"], "yes" if row["offline"] else "no", row["hub_id"] or "", row["description"])
    Console().print(table)


# ==== word senses, CBOW, report (issue: core) ================================================================
@app.command("senses")
def senses_cmd(
    sentences: str = typer.Option(..., "--sentences", "-s",
                                  help="TSV with header 'label<TAB>sentence' (label may be empty), plain text "
                                       "with one sentence a line, or a built-in set: apple-zh, apple-en."),
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help="Word, string or CJK character to embed (default for built-in "
                                              "sets: 果 / apple)."),
    out: Path = OutOpt,
    model: str = ModelOpt,
    layer: Optional[int] = typer.Option(None, "--layer", min=0, help="Layer of the similarity heatmap "
                                                              "(0 = embeddings; default: last)."),
    pool: str = typer.Option("mean", "--pool", help="How sub-tokens become one vector: mean or first."),
    static: Optional[Path] = typer.Option(None, "--static", help="Use a CBOW model (from `bertology cbow`) "
                                                                 "instead of the contextual model."),
    precision: str = PrecisionOpt,
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    seed: int = SeedOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Word senses: embed every occurrence of a target at every layer; cosine heatmap and per-layer
    separation of the labelled senses (within-sense minus between-sense cosine, silhouette, purity)."""
    from .experiments import senses
    from .report.figures import senses_figures

    sents, labels, source, target = senses.resolve_sentences(sentences, target)
    if static is not None:
        result = senses.static_senses(static, sents, labels, target, seed=seed, source=source)
    else:
        result = senses.word_senses(model, sents, labels, target, layer=layer, pool=pool, precision=precision,
                                    batch_size=batch_size, seed=seed, trust_remote_code=trust_remote_code,
                                    source=source)
    senses.save(result, out)
    senses_figures(result, out)
    for s in result.layers:
        fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
        typer.echo(f"layer {s.layer:2d}  within {fmt(s.within)}  between {fmt(s.between)}  "
                   f"separation {fmt(s.separation)}  silhouette {fmt(s.silhouette)}  purity {fmt(s.purity)}")
    if result.best_layer is not None:
        typer.echo(f"best layer: {result.best_layer}")
    if result.neighbours:
        typer.echo("nearest neighbours: " + ", ".join(f"{w} {c:.2f}" for w, c in result.neighbours))
    typer.echo(f"wrote {out}/results.json")


@app.command("cbow")
def cbow_cmd(
    corpus: List[Path] = typer.Option(..., "--corpus", "-c", help="Text file(s), one sentence a line (.gz ok); "
                                                                 "repeat for several."),
    out: Path = OutOpt,
    segment: str = typer.Option("char", "--segment", help="Chinese segmentation: char (each character a token, "
                                                          "as BERT) or word (jieba)."),
    max_lines: Optional[int] = typer.Option(None, "--max-lines", min=1, help="Read at most this many lines per file."),
    vector_size: int = typer.Option(100, "--dim", min=1),
    window: int = typer.Option(5, "--window", min=1),
    min_count: int = typer.Option(2, "--min-count", min=1),
    epochs: int = typer.Option(5, "--epochs", min=1),
    target: List[str] = typer.Option([], "--target", "-t", help="Print and save nearest neighbours of these."),
    seed: int = SeedOpt,
):
    """Train a static word2vec CBOW baseline (gensim): one vector per word, whatever its context.
    Use it with `bertology senses --static OUT`."""
    from .experiments import cbow
    from .experiments.senses import nearest_neighbours

    lines = cbow.corpus_lines(corpus, max_lines)
    result = cbow.train_cbow(lines, out, segment=segment, vector_size=vector_size, window=window,
                             min_count=min_count, epochs=epochs, seed=seed)
    kv, meta = cbow.load_cbow(out)
    neighbours = {t: nearest_neighbours(kv, t, meta["segment"]) for t in target}
    cbow.save(result, out, neighbours)
    typer.echo(f"CBOW: {result.vocab_size:,} words from {result.sentences:,} lines in {result.seconds:.1f} s")
    for t, near in neighbours.items():
        typer.echo(f"{t}: " + ", ".join(f"{w} {c:.2f}" for w, c in near))
    typer.echo(f"wrote {out}/cbow.bin and {out}/results.json")


@app.command("report")
def report_cmd(
    out: Path = OutOpt,
    model: List[str] = typer.Option(["minilm"], "--model", "-m", metavar="MODEL", help=MODEL_HELP + " Repeatable: every model "
                                    "runs every section it can, and the verdict table has a column per model."),
    full: bool = typer.Option(False, "--full", help="Paper-scale settings instead of the quick ones (~8 min). "
                              "Estimated time (docs/results.md): about 2 h 45 min on a 2-core CPU with --precision bf16, "
                              "about 4 h in fp32; about 15 min on one GPU."),
    only: List[str] = typer.Option([], "--only", help="Run only these sections (senses, cbow, pretrain, "
                                                      "crossdomain, qa, align)."),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = SeedOpt,
    trust_remote_code: bool = TrustOpt,
    fallback_model: str = typer.Option("zh-en-mini", "--fallback-model",
                                       help="Model that runs the sections --model cannot (Chinese text, an "
                                            "MLM head); each such section says so. '' for none."),
    keep_models: bool = typer.Option(False, "--keep-models", help="Keep the models sections fine-tune (QA) in "
                                     "OUT; by default the report folder holds results and figures only."),
):
    """Run every experiment on one or more models (--model A --model B: side by side) and write OUT/index.html:
    one self-contained page with every figure, the numbers and a short explanation per section. Sections no
    chosen model can run (e.g. Chinese on an English-only vocabulary, fill-mask without an MLM head) run on
    --fallback-model, the bilingual model shipped with bertology, and say so; without one they appear with
    the reason."""
    from .core.models import resolve_model
    from .core.precision import check_precision
    from .report import SECTIONS, build_report

    check_precision(precision)
    for m in model:
        resolve_model(m)
    if fallback_model:
        resolve_model(fallback_model)
    known = [m.rsplit(".", 1)[-1] for m, _ in SECTIONS]
    bad = [o for o in only if o not in known]
    if bad:
        raise UserError(f"--only {bad[0]!r}: unknown section (known: {', '.join(known)})")
    def echo_section(s) -> None:     # as each section ends (click flushes: visible in a log file too)
        typer.echo(f"{'skipped' if s.error else 'ok':8s} {s.seconds:7.1f} s  {s.title}"
                   + (f"  ({s.error.splitlines()[0][:100]})" if s.error else ""))

    page, _ = build_report(model, out, data_dir=str(data_dir) if data_dir else None, precision=precision,
                           seed=seed, quick=not full, only=only or None, trust_remote_code=trust_remote_code,
                           describe_error=describe_error, fallback_model=fallback_model or None,
                           keep_models=keep_models, on_section=echo_section)
    typer.echo(f"wrote {page}")

# ==== pretraining, tokenizer, fill-mask =======================================================================
tokenizer_app = typer.Typer(no_args_is_help=True, help="Train WordPiece vocabularies.")
app.add_typer(tokenizer_app, name="tokenizer")
CorpusOpt = typer.Option(..., "--corpus", "-c",
                         help="LANG=SOURCE[#COLUMN][@MAX_LINES], repeatable. SOURCE: a text file (one sentence or "
                              "paragraph a line, .gz ok), a directory of them, a SQuAD JSON (its paragraphs), or a "
                              "data set name (e.g. tatoeba-cmn-eng, squad-train, corpus-zh). #COLUMN picks a "
                              "tab-separated column (Tatoeba: en=tatoeba-cmn-eng#0 zh=tatoeba-cmn-eng#1); "
                              "@N keeps at most N lines of that source.")
AlphaOpt = typer.Option(0.7, "--alpha", callback=_fraction, help="Language sampling smoothing: p ∝ share^alpha (1 proportional, "
                                              "0 uniform; mBERT used 0.7).")


@tokenizer_app.command("train")
def tokenizer_train_cmd(
    corpus: List[str] = CorpusOpt,
    out: Path = OutOpt,
    vocab_size: int = typer.Option(16000, "--vocab-size", min=1, help="Vocabulary size, special tokens included."),
    lowercase: bool = typer.Option(True, "--lowercase/--cased", help="Lower-case (and strip accents) or keep case."),
    alpha: float = AlphaOpt,
    budget: int = typer.Option(20_000_000, "--budget-tokens", min=1,
                               help="Approximate tokens of text sampled (over all languages) to train on."),
    alphabet_size: Optional[int] = typer.Option(None, "--alphabet-size", min=1,
                                                help="Distinct characters kept as tokens, the most frequent "
                                                     "(default: a third of --vocab-size); the rest are [UNK]."),
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = SeedOpt,
):
    """Train a BERT WordPiece tokenizer (every CJK character its own token, punctuation split) with
    language-balanced sampling; OUT loads with AutoTokenizer.from_pretrained and works as --tokenizer."""
    from dataclasses import asdict

    from .io.corpora import read_corpora
    from .experiments.pretrain import TOKENIZER_SCHEMA, train_tokenizer
    from .io.storage import save_results

    corpora = read_corpora(corpus, str(data_dir) if data_dir else None)
    _, res = train_tokenizer(corpora, out, vocab_size, lowercase, None, alpha, budget, seed,
                             alphabet_size=alphabet_size)
    save_results(out, TOKENIZER_SCHEMA, {"corpora": corpus, **asdict(res)})
    print(f"vocabulary of {res.vocab_size} ({res.cjk_chars_in_vocab} CJK characters) written to {out}")


def _pretrain_hooks(cfg, track_alignment: Optional[Path], track_senses: Optional[str]) -> list:
    """pretrain's evaluation hooks: --track-alignment and --track-senses (experiments above pretrain)."""
    hooks = []
    if track_alignment is not None:
        from .experiments.align import AlignmentTracker

        hooks.append(AlignmentTracker(track_alignment, cfg.corpora, cfg.out_dir, cfg.data_dir, cfg.tokenizer))
    if track_senses is not None:
        from .experiments.senses import SenseTracker

        hooks.append(SenseTracker(track_senses, seed=cfg.seed))
    return hooks


@app.command("pretrain")
def pretrain_cmd(
    corpus: List[str] = CorpusOpt,
    out: Path = OutOpt,
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer or model directory to use; "
                                            "default: train a WordPiece vocabulary on the corpora."),
    vocab_size: int = typer.Option(16000, "--vocab-size", min=1, help="Size of the vocabulary trained when no "
                                   "--tokenizer (a third of it characters: Chinese in both scripts needs ~5,000)."),
    lowercase: bool = typer.Option(True, "--lowercase/--cased", help="Vocabulary trained when no --tokenizer: "
                                                                      "lower-case and strip accents, or keep case."),
    size: Optional[str] = typer.Option(None, "--size", help="tiny 2x128, mini 4x256 (the default), small 4x512, "
                                       "medium 8x512, base 12x768 (layers x hidden; heads = hidden/64). With "
                                       "--init-from: the source's architecture (a --size given must match it)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", metavar="MODEL",
                                            help="Warm start: copy this BERT's weights (alias, directory or hub "
                                                 "id) and extend its vocabulary with the run's tokenizer's new "
                                                 "tokens (see docs/pretrain.md)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="A BERT config.json instead of --size."),
    model_type: str = typer.Option("bert", "--model-type",
                                   help="Architecture of a model built from --size: bert (post-LN, as BERT) or "
                                        "roberta-prelayernorm (pre-LN); both load with AutoModelForMaskedLM."),
    max_sentences_per_lang: Optional[int] = typer.Option(None, "--max-sentences-per-lang", min=1,
                                                         help="Keep a random N lines per language (data-scale knob)."),
    max_steps: int = typer.Option(1000, "--max-steps", min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sequences per step per process."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Gradient accumulation steps."),
    seq_len: int = typer.Option(128, "--max-length", min=8, help="Packed sequence length in tokens (old spelling: --seq-len)."),
    lr: float = typer.Option(1e-3, "--lr", callback=_positive, help="Peak learning rate (AdamW, linear warm-up and "
                             "decay). 1e-3 leaves the BERT plateau after ~20M tokens for `mini` (docs/pretrain.md)."),
    warmup: float = typer.Option(0.03, "--warmup", callback=_non_negative, help="Warm-up: fraction of steps (<1) or steps (>=1)."),
    mask_rate: float = typer.Option(0.15, "--mask-rate", help="Share of tokens masked and predicted, in (0, 1) "
                                    "(BERT: 0.15; 0.3-0.4 can suit small models, docs/pretrain.md)."),
    whole_word: bool = typer.Option(False, "--whole-word", "--whole-word-mask", help="Mask whole words: a word's "
                                    "pieces, a Chinese word's characters (jieba's words) together."),
    span: bool = typer.Option(False, "--span", help="SpanBERT spans of words (of tokens without --whole-word)."),
    alpha: float = AlphaOpt,
    dropout: float = typer.Option(0.0, "--dropout", callback=_fraction, help="Hidden and attention dropout (default 0, as Cramming "
                                  "BERT found best for short single-epoch pretraining; Google's BERT used 0.1)."),
    compile: bool = typer.Option(False, "--compile/--no-compile",
                                 help="torch.compile the training step (~2x tokens/s on CPU after a few seconds "
                                      "of compilation; falls back to eager if compilation fails)."),
    eval_every: int = typer.Option(500, "--eval-every", min=1,
                                   help="Steps between held-out evaluation, export of OUT/model and checkpoint."),
    track_alignment: Optional[Path] = typer.Option(None, "--track-alignment", metavar="DICT",
                                                   help="Bilingual dictionary: log cross-lingual alignment (MRR) "
                                                        "of the model at every evaluation."),
    track_senses: Optional[str] = typer.Option(None, "--track-senses", metavar="SET", help="A sense set (zh-guo, "
                                               "en-apple, ...): log sense separation and purity at every evaluation."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last checkpoint."),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = SeedOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
):
    """Pretrain a BERT with masked-LM from scratch (packed sequences, 15% 80/10/10 masking by default, AdamW).

    Writes OUT/model (a model directory, refreshed at every evaluation), OUT/checkpoint (for --resume), log.jsonl,
    eval.jsonl, results.json, loss_curve.png. Runs under `torchrun --nproc_per_node=N` (docs/pretrain.md).
    """
    from .experiments.pretrain import PretrainConfig, pretrain

    ddir = str(data_dir) if data_dir else None
    cfg = PretrainConfig(corpora=corpus, out_dir=str(out), tokenizer=tokenizer, init_from=init_from,
                         vocab_size=vocab_size, lowercase=lowercase, size=size or (None if init_from else "mini"),
                         model_type=model_type, config_file=str(config_file) if config_file else None,
                         max_sentences_per_lang=max_sentences_per_lang, seq_len=seq_len, batch_size=batch_size,
                         grad_accum=grad_accum, max_steps=max_steps, lr=lr, warmup=warmup, mask_rate=mask_rate,
                         whole_word=whole_word, span=span, alpha=alpha, dropout=dropout, precision=precision,
                         compile=compile, seed=seed, eval_every=eval_every, resume=resume, data_dir=ddir,
                         progress=progress)
    with _flags(corpora="--corpus", whole_word="--whole-word", config_file="--config"):
        hooks = _pretrain_hooks(cfg, track_alignment, track_senses)
        res = pretrain(cfg, eval_hooks=hooks)
    from .core.engine import is_main_process
    from .report.figures import pretrain_figures

    if is_main_process():     # under torchrun only rank 0 writes (and evaluates)
        pretrain_figures(res.train_log, res.history, out)
    if res.final and is_main_process():
        print(f"{res.steps} steps, {res.tokens_per_s:.0f} tokens/s; held-out loss {_measured(res.final.get('eval_loss'))}, "
              f"masked-token accuracy {_measured(res.final.get('eval_acc'))}; model in {res.model_dir}")


@app.command("fill-mask")
def fill_mask_cmd(
    texts: List[str] = typer.Argument(..., help="Texts with one or more [MASK], e.g. '今天買了蘋[MASK]來吃'."),
    model: str = ModelOpt,
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Candidates shown per mask."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_out_dir,
                                       help="Also write results.json and fill_mask.png here."),
    convert: Optional[str] = typer.Option(None, "--convert", help="OpenCC conversion of the texts first, e.g. "
                                          "t2s (Traditional to Simplified) for a model trained on Simplified."),
    precision: str = PrecisionOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Fill in the blank: the top-k tokens and probabilities for every [MASK] (needs a model with an MLM head)."""
    from dataclasses import asdict

    from .experiments.mlm import FILL_MASK_SCHEMA, fill_mask

    with _flags(texts="the text"):     # the positional TEXTS argument, not an option
        res = fill_mask(model, texts, top_k, precision, trust_remote_code, convert)
    for it in res.items:
        print(it["text"])
        for j, m in enumerate(it["masks"]):
            print(f"  [MASK] {j + 1}: " + "  ".join(f"{c['token']} {c['prob']:.3f}" for c in m["candidates"]))
    if out is not None:
        from .io.storage import save_results
        from .report.figures import fill_mask_figures

        save_results(out, FILL_MASK_SCHEMA, asdict(res))
        fill_mask_figures(res, out)


@app.command("cloze")
def cloze_cmd(
    model: str = ModelOpt,
    items: str = typer.Option("cloze-en-zh", "--items", help="TSV with header lang<TAB>sentence<TAB>answer (one "
                              "[MASK] a sentence, single-token answers), or the built-in set cloze-en-zh."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_out_dir, help="Also write results.json here."),
    precision: str = PrecisionOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Cloze accuracy: top-1 / top-5 of the masked-LM head on fill-in-the-blank items, per language."""
    from dataclasses import asdict

    from .experiments.cloze import CLOZE_SCHEMA, cloze_accuracy, read_cloze_items

    res = cloze_accuracy(model, read_cloze_items(items), precision, trust_remote_code)
    for lang, s in res.summary.items():
        print(f"{lang}: top-1 {_measured(s['top1'])}  top-5 {_measured(s['top5'])}  ({s['n']} items, "
              f"{s['unscorable']} answers not a single token)")
    if out is not None:
        from .io.storage import save_results

        save_results(out, CLOZE_SCHEMA, asdict(res))


# ==== cross-disciplinary transfer =============================================================================
@app.command("crossdomain")
def crossdomain_cmd(
    task: str = typer.Option("splice", "--task", "-t", help="splice | multiloc | composer, or a file: CSV/TSV of "
                             "`sequence,label` (header optional), FASTA with `>ID LABEL` headers, splice.data."),
    model: str = ModelOpt,
    out: Path = OutOpt,
    conditions: str = typer.Option("pretrained,scratch,rand-embed,shuffled,frozen,composition", "--conditions",
                                   help="Comma list of: pretrained, scratch (same config, random init), rand-embed "
                                        "(pretrained body, re-initialised word embeddings), shuffled (every "
                                        "pretrained tensor's entries permuted), frozen (linear probe), composition "
                                        "(no network: logistic regression on k-mer counts, the no-order baseline)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Runs per condition (seeds SEED..SEED+K-1): mean ± std."),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Maximum epochs per run (8: where minilm converges on "
                               "splice over 3 seeds; docs/crossdomain.md)."),
    patience: int = typer.Option(2, "--patience", min=0, help="Stop after this many epochs without dev improvement (0: never)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    lr: float = typer.Option(2e-4, "--lr", callback=_positive, help="Peak learning rate (every condition not in --tune)."),
    lr_grid: str = typer.Option("", "--lr-grid", help="Comma list of learning rates searched on DEV accuracy (first "
                                "seed) for each condition in --tune, e.g. 1e-4,2e-4,5e-4; empty: no search."),
    tune: str = typer.Option("scratch", "--tune", help="Conditions whose learning rate --lr-grid chooses (comma list)."),
    warmup: float = typer.Option(0.06, "--warmup", callback=_non_negative, help="Linear warm-up: a fraction of the steps (< 1) or a "
                                 "number of steps; then linear decay to 0."),
    max_length: int = typer.Option(512, "--max-length", min=8, help="Tokens per window; longer sequences are cut into "
                                   "windows whose logits are averaged."),
    max_windows: int = typer.Option(4, "--max-windows", min=1, help="Training windows per long sequence (evenly spaced)."),
    kmer: int = typer.Option(1, "--kmer", min=1, help="Map overlapping k-mers instead of single symbols."),
    symbols: str = typer.Option("auto", "--symbols", help="chars | tokens | auto (tokens if whitespace appears)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use a fixed stratified subset of this many examples."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="JSON symbol->token file (or an earlier "
                                           "results.json) instead of a fresh random mapping."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip malformed rows (counted) instead of stopping."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted experiment in OUT: finished runs "
                                "are kept, the one in progress continues from its checkpoint (same settings only)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: all)."),
    precision: str = PrecisionOpt,
    data_dir: Optional[str] = DataDirOpt,
    trust_remote_code: bool = TrustOpt,
    seed: int = SeedOpt,
):
    """Cross-disciplinary transfer (Kao & Lee 2021): fine-tune a text-pretrained BERT on DNA / protein / music
    sequences written as random English words, against the same network from scratch and controls.

    Writes results.json (bertology.crossdomain/1), conditions.png (bars, mean ± std over seeds) and learning_curves.png. Add --resume to continue an interrupted experiment.
    """
    from .experiments.crossdomain import CrossDomainConfig, run_crossdomain, save, summary_rows
    from .report.figures import crossdomain_figures

    _set_threads(threads)
    cfg = CrossDomainConfig(model=model, task=task, conditions=tuple(c.strip() for c in conditions.split(",") if c.strip()),
                            seeds=seeds, seed=seed, epochs=epochs, patience=patience or None, batch_size=batch_size,
                            lr=lr, lr_grid=tuple(_floats_arg(lr_grid, "--lr-grid")) if lr_grid.strip() else (),
                            tune=tuple(c.strip() for c in tune.split(",") if c.strip()),
                            warmup=warmup, precision=precision, max_length=max_length, max_windows=max_windows, kmer=kmer,
                            symbols=symbols, limit=limit, mapping=str(mapping) if mapping else None,
                            skip_bad=skip_bad, resume=resume, data_dir=data_dir,
                            trust_remote_code=trust_remote_code)
    result = run_crossdomain(cfg, out)
    crossdomain_figures(result, out)    # before saving: results.json lists the figures
    save(result, out)
    if result.skipped_rows:
        typer.echo(f"skipped {len(result.skipped_rows)} bad rows (listed in results.json), e.g. {result.skipped_rows[0]}",
                   err=True)
    for row in summary_rows(result.summary):
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))
    typer.echo(f"wrote {out / 'results.json'}")


# ==== question answering ======================================================================================
qa_app = typer.Typer(no_args_is_help=True, help="Extractive QA (SQuAD format) and cross-lingual zero-shot "
                                                "transfer: fine-tune on English, answer in Chinese.")
app.add_typer(qa_app, name="qa")

_QA_DATA_HELP = ("SQuAD-format .json / .json.gz, or a data set name (squad-train, squad-dev, xquad-en, xquad-zh, "
                 "drcd-dev, cmrc-trial).")
_QaMaxLen = typer.Option(384, "--max-length", min=8, help="Tokens per window, clamped to the model's maximum (old spelling: --max-len).")
_QaStride = typer.Option(128, "--doc-stride", min=0, help="Tokens shared by consecutive windows of a long context.")
_QaNBest = typer.Option(20, "--n-best", min=1, help="Spans kept per question (nbest.json).")
_QaMaxAns = typer.Option(30, "--max-answer-len", min=1, help="Longest answer, in tokens.")
_QaBatch = typer.Option(16, "--eval-batch-size", min=1, help="Windows per inference batch.")
_QaSpanScore = typer.Option("logit", "--span-score", help="How spans from different windows of one context "
                            "compare: logit (start + end logit, as run_qa.py) or window-prob (probabilities "
                            "normalised per window, as the Hugging Face pipeline).")
_QaLang = typer.Option("auto", "--lang", help="Metric: en (SQuAD v1.1), zh (CMRC 2018, also DRCD) or auto "
                                             "(zh when the contexts are mostly CJK).")
_QaSkipBad = typer.Option(False, "--skip-bad", help="Skip malformed questions (counted) instead of stopping.")
_QaLimit = typer.Option(None, "--limit", min=1, help="Use a seeded random sample of this many questions per eval set.")
_QaMaxTrain = typer.Option(None, "--max-train", min=1, help="Train on a seeded random sample of this many questions.")
_QaEpochs = typer.Option(2.0, "--epochs", callback=_positive)
_QaMaxSteps = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps (overrides --epochs).")
_QaTrainBatch = typer.Option(16, "--batch-size", min=1, help="Training windows per step.")
_QaLr = typer.Option(5e-5, "--lr", callback=_positive, help="Peak learning rate (linear warm-up over 10%, then linear decay).")
_QaEvalEvery = typer.Option(None, "--eval-every", min=1, help="Steps between dev evaluations (default: each epoch).")
_QaCkptEvery = typer.Option(200, "--checkpoint-every", min=1, help="Steps between resumable checkpoints.")
_QaResume = typer.Option(False, "--resume", help="Continue the run in OUT from its last checkpoint (without it, a "
                                                  "checkpoint in OUT is refused, as in `pretrain`).")
_QaThreads = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: all).")


def _qa_settings(max_len, doc_stride, n_best, max_answer_len, batch_size, precision, span_score="logit",
                 verify_margin=None):
    from .experiments.qa import QASettings

    # checked once, by the experiment it is passed to (qa.train: fp32 | bf16; qa.predict_file also bf16-verified)
    extra = {} if verify_margin is None else {"verify_margin": verify_margin}
    return QASettings(max_len=max_len, doc_stride=doc_stride, n_best=n_best, max_answer_len=max_answer_len,
                      batch_size=batch_size, precision=precision, span_score=span_score, **extra)


_QaPredictPrecision = typer.Option(
    "fp32", "--precision", help="fp32, bf16 (~2-3x faster than fp32 here; may flip near-tie answers) or "
    "bf16-verified (bf16, then each question whose answer leads a different one by less than --verify-margin "
    "is re-run in fp32; gave the fp32 answer on every question measured, ~1.3-1.8x faster than fp32; see "
    "docs/qa.md).")
_QaVerifyMargin = typer.Option(0.3, "--verify-margin", callback=_number(low=0, inf_ok=True), help="bf16-verified: score lead (in --span-score units: "
                               "log-probabilities with window-prob, logits with logit) below which a question is "
                               "re-run in fp32; 0.3 covers every bf16 error measured (docs/qa.md).")


def _qa_named(specs: List[str], what: str) -> list[tuple[str, str]]:
    """'NAME=FILE' pairs; a bare FILE or data set name is named after itself."""
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            name, value = Path(spec).stem if Path(spec).exists() else spec, spec
        if not name or not value:
            raise UserError(f"{what} {spec!r}: expected NAME=FILE")
        if name in dict(out):       # the second set's scores and predictions file replaced the first's
            raise UserError(f"{what} {spec!r}: the name {name!r} is given twice; name each set once (NAME=FILE)")
        out.append((name, value))
    return out


def _qa_save(result, out: Path) -> None:
    """results.json (+ predictions, n-best) and the figures that apply."""
    from .experiments import qa
    from .report.figures import qa_figures

    qa_figures(result, out)
    qa.save(result, out)


def _qa_print_scores(scores) -> None:
    for sc in scores:
        typer.echo(f"{sc.name:28s} {sc.lang}  EM {sc.exact_match:6.2f}  F1 {sc.f1:6.2f}  "
                   f"({sc.total} questions, {sc.missing} unanswered)")


@qa_app.command("score")
def qa_score_cmd(
    data: str = typer.Option(..., "--data", "-d", help=_QA_DATA_HELP),
    predictions: Path = typer.Option(..., "--predictions", "-p", help='Official predictions JSON: '
                                     '{"question id": "answer text"}.'),
    lang: str = _QaLang,
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=_out_dir, help="Also write OUT/results.json."),
    skip_bad: bool = _QaSkipBad,
    data_dir: Optional[str] = DataDirOpt,
):
    """Score predictions with the official metrics: exact_match and f1 (0-100), total, missing (unanswered
    questions count as 0)."""
    from .experiments import qa

    # scored data: answer texts only, as the official scripts (no offset validation)
    ds = qa.load_data(data, data_dir, skip_bad=skip_bad, check_offsets=False)
    sc = qa.score(ds, qa.load_predictions(predictions), lang)
    _qa_print_scores([sc])
    if out:
        _qa_save(qa.QAResult("score", None, None, [sc]), out)
        typer.echo(f"wrote {out}/results.json")


@qa_app.command("train")
def qa_train_cmd(
    train: List[str] = typer.Option(["squad-train"], "--train", "-t", help=_QA_DATA_HELP + " Repeat to concatenate."),
    dev: Optional[str] = typer.Option(None, "--dev", help="Dev set for early stopping / best weights "
                                      "(" + _QA_DATA_HELP + ")"),
    out: Path = OutOpt,
    model: str = ModelOpt,
    max_train: Optional[int] = _QaMaxTrain,
    max_dev: Optional[int] = typer.Option(500, "--max-dev", min=1, help="Dev questions used for evaluation (sampled)."),
    epochs: float = _QaEpochs, max_steps: Optional[int] = _QaMaxSteps, batch_size: int = _QaTrainBatch,
    lr: float = _QaLr, eval_every: Optional[int] = _QaEvalEvery, checkpoint_every: int = _QaCkptEvery,
    patience: Optional[int] = typer.Option(None, "--patience", min=0, help="Stop after this many evaluations without "
                                           "dev F1 improvement."),
    resume: bool = _QaResume,
    max_len: int = _QaMaxLen, doc_stride: int = _QaStride, n_best: int = _QaNBest,
    max_answer_len: int = _QaMaxAns, eval_batch_size: int = _QaBatch,
    lang: str = _QaLang, skip_bad: bool = _QaSkipBad, threads: Optional[int] = _QaThreads,
    precision: str = PrecisionOpt, data_dir: Optional[str] = DataDirOpt, seed: int = SeedOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Fine-tune a span-extraction head: sliding windows over long contexts, answer span labelled in the
    window that holds it ([CLS] elsewhere), shared engine (bf16, resume, progress). Writes OUT/model (use it as
    --model), OUT/train/ (checkpoint, log.jsonl), results.json and qa_training.png."""
    from .experiments import qa

    _set_threads(threads)
    s = _qa_settings(max_len, doc_stride, n_best, max_answer_len, eval_batch_size, precision)
    t = qa.TrainSettings(epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, eval_every=eval_every,
                         checkpoint_every=checkpoint_every, patience=patience, seed=seed, resume=resume)
    train_sets = [qa.load_data(f, data_dir, skip_bad=skip_bad, limit=max_train, seed=seed) for f in train]
    dev_set = (qa.load_data(dev, data_dir, skip_bad=skip_bad, check_offsets=False, limit=max_dev, seed=seed)
               if dev else None)
    _, _, tr = qa.train(model, train_sets, dev_set, out, s, t, dev_lang=lang, trust_remote_code=trust_remote_code)
    _qa_save(qa.QAResult("train", model, qa.asdict(s), [], tr), out)
    typer.echo(f"{tr.steps} steps on {tr.train_windows} windows in {tr.wall_time:.0f} s"
               + (f"; best dev F1 {tr.best_dev_f1:.2f} at step {tr.best_step}" if tr.best_dev_f1 is not None else ""))
    typer.echo(f"wrote {tr.model_dir} and {out}/results.json")


def _qa_predict_or_eval(command, model, data, out, lang, limit, skip_bad, settings, data_dir, seed, convert,
                        trust_remote_code):
    from .experiments import qa

    ds = qa.load_data(data, data_dir, skip_bad=skip_bad, require_answers=command == "eval",
                      check_offsets=False, limit=limit, seed=seed)
    with _flags(batch_size="--eval-batch-size"):
        result = qa.predict_file(command, model, ds, settings, lang=lang, convert=convert,
                                 trust_remote_code=trust_remote_code)
    _qa_save(result, out)
    if result.scores:
        _qa_print_scores(result.scores)
    typer.echo(f"{len(result.predictions)} questions answered; wrote {out}/predictions.json, nbest.json, "
               f"results.json")


@qa_app.command("predict")
def qa_predict_cmd(
    data: str = typer.Option(..., "--data", "-d", help=_QA_DATA_HELP + " Answers are not needed."),
    out: Path = OutOpt, model: str = ModelOpt, limit: Optional[int] = _QaLimit,
    max_len: int = _QaMaxLen, doc_stride: int = _QaStride, n_best: int = _QaNBest,
    max_answer_len: int = _QaMaxAns, eval_batch_size: int = _QaBatch, skip_bad: bool = _QaSkipBad,
    span_score: str = _QaSpanScore,
    convert: Optional[str] = typer.Option(None, "--convert", callback=_t2s_or_s2t,
                                          help="t2s or s2t: convert the text with OpenCC "
                                          "before predicting; answers are mapped back to the original text."),
    threads: Optional[int] = _QaThreads, precision: str = _QaPredictPrecision,
    verify_margin: float = _QaVerifyMargin, data_dir: Optional[str] = DataDirOpt,
    seed: int = SeedOpt, trust_remote_code: bool = TrustOpt,
):
    """Answer questions with a QA model (e.g. OUT/model from `qa train`): n-best span search over every
    window, answers cut from the original context. Writes predictions.json (official format) and nbest.json."""
    _set_threads(threads)
    _qa_predict_or_eval("predict", model, data, out, "auto", limit, skip_bad,
                        _qa_settings(max_len, doc_stride, n_best, max_answer_len, eval_batch_size, precision,
                                     span_score, verify_margin),
                        data_dir, seed, convert, trust_remote_code)


@qa_app.command("eval")
def qa_eval_cmd(
    data: str = typer.Option(..., "--data", "-d", help=_QA_DATA_HELP),
    out: Path = OutOpt, model: str = ModelOpt, lang: str = _QaLang, limit: Optional[int] = _QaLimit,
    max_len: int = _QaMaxLen, doc_stride: int = _QaStride, n_best: int = _QaNBest,
    max_answer_len: int = _QaMaxAns, eval_batch_size: int = _QaBatch, skip_bad: bool = _QaSkipBad,
    span_score: str = _QaSpanScore,
    convert: Optional[str] = typer.Option(None, "--convert", callback=_t2s_or_s2t,
                                          help="t2s or s2t: also score the data after OpenCC "
                                          "conversion (e.g. Traditional DRCD for a Simplified-trained model)."),
    threads: Optional[int] = _QaThreads, precision: str = _QaPredictPrecision,
    verify_margin: float = _QaVerifyMargin, data_dir: Optional[str] = DataDirOpt,
    seed: int = SeedOpt, trust_remote_code: bool = TrustOpt,
):
    """Predict and score with the official metrics (SQuAD v1.1 for English, CMRC 2018 for Chinese)."""
    _set_threads(threads)
    _qa_predict_or_eval("eval", model, data, out, lang, limit, skip_bad,
                        _qa_settings(max_len, doc_stride, n_best, max_answer_len, eval_batch_size, precision,
                                     span_score, verify_margin),
                        data_dir, seed, convert, trust_remote_code)


@qa_app.command("crosslingual")
def qa_crosslingual_cmd(
    train: List[str] = typer.Option(["en=squad-train"], "--train", "-t", help="LANG=FILE training set(s), e.g. "
                                    "en=squad-train (" + _QA_DATA_HELP + ")"),
    eval_sets: List[str] = typer.Option(..., "--eval", "-e", help="NAME=FILE eval set; repeat, e.g. "
                                        "--eval xquad-zh=xquad-zh --eval DRCD=drcd-dev."),
    out: Path = OutOpt, model: str = ModelOpt,
    dev: Optional[str] = typer.Option(None, "--dev", help="Dev set for best weights (default: none; the "
                                      "last weights are evaluated)."),
    max_dev: Optional[int] = typer.Option(300, "--max-dev", min=1, help="Dev questions used (sampled)."),
    convert: Optional[str] = typer.Option(None, "--convert", callback=_t2s_or_s2t,
                                          help="t2s or s2t: also score each Chinese eval set "
                                          "after OpenCC conversion (Traditional DRCD for a Simplified model)."),
    max_train: Optional[int] = _QaMaxTrain, limit: Optional[int] = _QaLimit,
    epochs: float = _QaEpochs, max_steps: Optional[int] = _QaMaxSteps, batch_size: int = _QaTrainBatch,
    lr: float = _QaLr, eval_every: Optional[int] = _QaEvalEvery, checkpoint_every: int = _QaCkptEvery,
    resume: bool = _QaResume,
    max_len: int = _QaMaxLen, doc_stride: int = _QaStride, n_best: int = _QaNBest,
    max_answer_len: int = _QaMaxAns, eval_batch_size: int = _QaBatch, skip_bad: bool = _QaSkipBad,
    threads: Optional[int] = _QaThreads, precision: str = PrecisionOpt, data_dir: Optional[str] = DataDirOpt,
    seed: int = SeedOpt, trust_remote_code: bool = TrustOpt,
):
    """The lecture's experiment: one fine-tuning run (e.g. English SQuAD only), evaluated zero-shot on every
    eval set (SQuAD dev, XQuAD-en/zh, DRCD dev, CMRC trial...). Prints a table next to the lecture's
    (mBERT en->zh DRCD 78.8 F1); writes results.json, qa_scores.png, qa_training.png, predictions_*.json."""
    from .experiments import qa

    _set_threads(threads)
    s = _qa_settings(max_len, doc_stride, n_best, max_answer_len, eval_batch_size, precision)
    t = qa.TrainSettings(epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, eval_every=eval_every,
                         checkpoint_every=checkpoint_every, seed=seed, resume=resume)
    train_sets = qa.load_sets(dict(_qa_named(train, "--train")), data_dir, max_train, seed, skip_bad=skip_bad)
    evals = qa.load_sets(dict(_qa_named(eval_sets, "--eval")), data_dir, limit, seed, skip_bad=skip_bad,
                         check_offsets=False)
    dev_set = (qa.load_data(dev, data_dir, skip_bad=skip_bad, check_offsets=False, limit=max_dev, seed=seed)
               if dev else None)
    result = qa.crosslingual(model, train_sets, evals, out, s, t, dev=dev_set, convert=convert,
                             trust_remote_code=trust_remote_code)
    _qa_save(result, out)
    _qa_print_scores(result.scores)
    for k, v in qa.LECTURE_DRCD_F1.items():
        typer.echo(f"{'lecture: ' + k:40s} F1 {v:5.1f}  (DRCD dev)")
    for n in result.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"wrote {out}/results.json")


# ==== cross-lingual alignment and language vectors ============================================================
AlignCorpusOpt = typer.Option(..., "--corpus", "-c",
                              help="LANG=SOURCE[#COLUMN][@MAX_LINES], one or more per language (as for pretrain): "
                                   "monolingual text where the words are looked up, e.g. en=corpus-en "
                                   "zh=corpus-zh or en=tatoeba-cmn-eng#0 zh=tatoeba-cmn-eng#1.")
DictOpt = typer.Option("muse-en-zh", "--dict", "-d",
                       help="Bilingual dictionary: a MUSE file (source<TAB>target) or CC-CEDICT (.zip/.u8), or a "
                            "data set name (muse-en-zh, muse-zh-en, cedict).")
ConvertOpt = typer.Option("auto", "--convert",
                          help="Chinese script conversion of the dictionary with opencc: auto (t2s when the "
                               "dictionary is Traditional and the corpus Simplified, s2t the reverse), t2s, s2t, none.")
LayersOpt = typer.Option("all", "--layers", help="'all' or comma-separated layer indices (0 = embeddings).")


def _layers_arg(text: str) -> Optional[List[int]]:
    if text.strip().lower() == "all":
        return None
    try:
        layers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        layers = []
    if not layers:      # "" gave no layer at all, and a traceback further on
        raise UserError(f"--layers {text!r}: expected 'all' or comma-separated integers such as 0,2,4")
    return layers


def _floats_arg(text: str, name: str) -> List[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals:
        raise UserError(f"{name} {text!r}: expected comma-separated numbers such as 0,1,2")
    if not all(math.isfinite(v) for v in vals):   # "nan,inf" parse as floats: refused, not a grid of NaN scores
        raise UserError(f"{name} {text!r}: every value must be a finite number")
    return vals


def _align_inputs(corpus, dict_path, dict_format, convert, source, target, max_lines, data_dir):
    """Read corpora, pick the two languages, load the dictionary (converted as asked)."""
    from .io.bilingual import read_bilingual

    data = read_bilingual(corpus, dict_path, source, target, convert, dict_format, max_lines,
                          str(data_dir) if data_dir else None)
    return data.corpora, data.source, data.target, data.dictionary


@app.command("align")
def align_cmd(
    corpus: List[str] = AlignCorpusOpt,
    out: Path = OutOpt,
    model: str = ModelOpt,
    dict_path: str = DictOpt,
    dict_format: str = typer.Option("auto", "--dict-format", help="auto, muse or cedict."),
    convert: str = ConvertOpt,
    source: Optional[str] = typer.Option(None, "--source", help="Source language (default: the first --corpus)."),
    target: Optional[str] = typer.Option(None, "--target", help="Target language (default: the second --corpus)."),
    layers: str = LayersOpt,
    k: int = typer.Option(5, "--k", min=1, help="Occurrences per word averaged into its vector (K)."),
    max_words: int = typer.Option(1000, "--max-words", min=0, help="Source words evaluated (a seeded sample); 0 = all."),
    max_candidates: int = typer.Option(0, "--max-candidates", min=0,
                                       help="Candidate target words (golds always kept, the rest a seeded sample); "
                                            "0 = every usable dictionary target."),
    max_lines: int = typer.Option(50000, "--max-lines", min=1, help="Corpus lines read per language."),
    csls_k: int = typer.Option(10, "--csls-k", min=1, help="Neighbourhood size of CSLS's hubness correction."),
    cbow: bool = typer.Option(True, "--cbow/--no-cbow", help="Also train the per-language CBOW baseline."),
    keep_identical: bool = typer.Option(False, "--keep-identical",
                                        help="Keep pairs whose two sides are the same string and words in the other "
                                             "side's script (skipped by default: a shared token is not a translation; "
                                             "needed for the identity-dictionary sanity check)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sentences per forward pass."),
    max_length: int = typer.Option(64, "--max-length", min=8, help="Tokens per window around an occurrence."),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = SeedOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Cross-lingual alignment: MRR (and P@1, P@5) per layer of ranking each source word's translations among
    all candidate target words, by cosine and CSLS; contextual and context-free word vectors, with CBOW and
    random baselines. Writes OUT/results.json and OUT/mrr_per_layer.png."""
    from .experiments import align
    from .report.figures import align_figures

    layer_list = _layers_arg(layers)        # before the corpora are read
    corpora, source, target, d = _align_inputs(corpus, dict_path, dict_format, convert, source, target,
                                               max_lines, data_dir)
    with _flags(layer="--layers"):
        res = align.align(model, d, corpora, source, target, layer_list, k=k,
                          max_words=max_words or None, max_candidates=max_candidates or None, csls_k=csls_k,
                          precision=precision, batch_size=batch_size, max_length=max_length, cbow=cbow, seed=seed,
                          work_dir=None, trust_remote_code=trust_remote_code, keep_identical=keep_identical)
    align.save(res, out)
    align_figures(res, out)
    b = res.best
    print(f"{res.coverage['source_words']} {source} words vs {res.coverage['candidates']} {target} candidates "
          f"({res.coverage['evaluated_pairs']} pairs; {res.coverage['skipped_pairs']} skipped). Best layer {b['layer']}: "
          f"MRR {b['mrr']:.3f} (random ranking {res.baselines['random_expected_mrr']:.4f}). Results in {out}")


@app.command("langvec")
def langvec_cmd(
    corpus: List[str] = AlignCorpusOpt,
    out: Path = OutOpt,
    model: str = ModelOpt,
    sentences: List[str] = typer.Option(["en=tatoeba-cmn-eng#0@200"], "--sentences",
                                        help="Source-language sentences to translate, LANG=SOURCE[#COL][@N]."),
    dict_path: str = DictOpt,
    dict_format: str = typer.Option("auto", "--dict-format", help="auto, muse or cedict."),
    convert: str = ConvertOpt,
    source: Optional[str] = typer.Option(None, "--source", help="Source language (default: the first --corpus)."),
    target: Optional[str] = typer.Option(None, "--target", help="Target language (default: the second --corpus)."),
    layers: str = LayersOpt,
    alphas: str = typer.Option("0,0.5,1,1.5,2,3", "--alphas", help="Comma-separated α values swept."),
    mean_sentences: int = typer.Option(1000, "--mean-sentences", min=1, help="Sentences averaged per language mean."),
    max_lines: int = typer.Option(20000, "--max-lines", min=1, help="Corpus lines read per language."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Sentences per forward pass."),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = SeedOpt,
    trust_remote_code: bool = TrustOpt,
):
    """Language vectors and mean-shift translation: add α·(μ_target − μ_source) at layer L to source sentences,
    let the MLM head fill every position, and score token-translation precision against the dictionary for
    each (L, α). Needs a model with an MLM head. Writes OUT/results.json and OUT/langvec_grid.png."""
    from .experiments import langvec
    from .report.figures import langvec_figures
    from .io.corpora import read_corpora

    alpha_values, layer_list = _floats_arg(alphas, "--alphas"), _layers_arg(layers)    # before any reading
    corpora, source, target, d = _align_inputs(corpus, dict_path, dict_format, convert, source, target,
                                               max_lines, data_dir)
    with _flags(corpus="--sentences"):
        by_lang = read_corpora(sentences, str(data_dir) if data_dir else None)
    other = [lang for lang in by_lang if lang != source]
    if other:       # zh sentences were looked up in the en side of the dictionary: "precision nan over 0 words"
        raise UserError(f"--sentences {other[0]}=...: the sentences to translate must be in the source language "
                        f"{source!r} (--source; the dictionary is {source}-{target})")
    sents = [s for lines in by_lang.values() for s in lines]
    with _flags(layer="--layers"):
        res = langvec.langvec(model, corpora, sents, d, source, target, layer_list,
                              alpha_values, mean_sentences, precision, batch_size, seed=seed,
                              trust_remote_code=trust_remote_code)
    langvec.save(res, out)
    langvec_figures(res, out)
    b = res.best
    print(f"best: layer {b['layer']}, α {b['alpha']:g}: precision {b['precision']:.3f} over {b['scored_words']} "
          f"words, {b['target_script_rate']:.2f} of tokens in {target} script. Results in {out}")


@app.command("align-scale")
def align_scale_cmd(
    corpus: List[str] = typer.Option(..., "--corpus", "-c",
                                     help="Training text, LANG=SOURCE[#COLUMN][@MAX_LINES], repeatable (as for "
                                          "pretrain). The alignment words are looked up in the first 20,000 lines of "
                                          "each language's first source."),
    out: Path = OutOpt,
    dict_path: str = DictOpt,
    convert: str = ConvertOpt,
    sentences: str = typer.Option("10000,50000", "--sentences",
                                  help="Sentences per language of each run (the lecture: 200K vs 1,000K)."),
    size: str = typer.Option("tiny", "--size", help="Model preset shared by all runs (see `pretrain --help`)."),
    steps: int = typer.Option(2000, "--max-steps", min=1, help="Optimizer steps per run, the same for every size "
                              "(old spelling: --steps)."),
    eval_every: int = typer.Option(250, "--eval-every", min=1, help="Steps between loss + alignment evaluations."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Sequences per step."),
    seq_len: int = typer.Option(64, "--max-length", min=8, help="Packed sequence length (old spelling: --seq-len)."),
    vocab_size: int = typer.Option(8000, "--vocab-size", min=1, help="WordPiece vocabulary, trained once on the largest sample."),
    lr: float = typer.Option(1e-3, "--lr", callback=_positive, help="Peak learning rate."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted experiment in OUT (finished "
                                                        "runs are kept, the unfinished one continues)."),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    seed: int = SeedOpt,
):
    """The data-scale experiment: pretrain identical bilingual models on N and 5N sentences per language and
    plot masked-LM loss and alignment MRR against steps (OUT/data_scale.png; each run in OUT/n<N>/)."""
    from .experiments.data_scale import data_scale
    from .report.figures import data_scale_figures

    sizes = [int(x) for x in _floats_arg(sentences, "--sentences")]
    if len(set(sizes)) != len(sizes) or min(sizes) < 1:   # a size twice ran (and plotted) the same run twice
        raise UserError(f"--sentences {sentences!r}: each size must be a whole number above 0, and given once")
    res = data_scale(corpus, dict_path, out, sizes, size, steps, eval_every, batch_size, seq_len, vocab_size,
                     lr, precision, seed, convert=convert, data_dir=str(data_dir) if data_dir else None,
                     after_each_run=lambda partial: data_scale_figures(partial, out), resume=resume)
    for run in res.runs:
        last = run.history[-1] if run.history else {}
        print(f"{run.sentences_per_lang:,} sentences/lang: loss {_measured(last.get('eval_loss'))}, "
              f"MRR {last.get('mrr', float('nan')):.4f} (random {res.random_expected_mrr or float('nan'):.4f})")


# ==== the interactive explorer (issue 15) ======================================================================
@app.command("serve")
def serve_cmd(
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Model the page opens with (repeat to "
                                              "offer several); installed aliases from `bertology models` are "
                                              "offered too. Default: zh-en-mini."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback prints a "
                                                         "warning (there is no authentication)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", callback=_data_dir, help="Where Tatoeba and MUSE are found (the "
                                           "neighbours and language-vector views); default: see README, Data."),
    precision: str = PrecisionOpt,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Cap torch's threads (default: all cores)."),
    trust_remote_code: bool = TrustOpt,
):
    """Interactive explorer in the browser: word senses, fill-mask, neighbours across languages, language
    vectors and attention, on the models of the picker, one or two side by side (see docs/serve.md)."""
    from .serve.server import run_server

    _set_threads(threads)
    run_server(model, host, port, data_dir, precision, trust_remote_code)


def _one_line(message: str) -> str:
    """A message as one line: a script that reads stderr (and a user scanning it) gets one line per error."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: exit 0 on success, 2 on a user mistake (one line on stderr), 1 on a bug (traceback).

    Usage errors (unknown option, a value out of range) come from click, caught here (standalone_mode=False)
    so that they read as one line like every other user error, not click's boxed multi-line usage text.
    """
    _quiet_libraries()
    argv = _new_spellings(list(sys.argv[1:] if argv is None else argv))
    try:
        code = app(args=argv, prog_name="bertology", standalone_mode=False)
    except UserError as e:
        print(f"bertology: error: {_one_line(describe_error(e))}", file=sys.stderr)
        return 2
    except typer.TyperException as e:
        if type(e).__name__ == "NoArgsIsHelpError":    # `bertology qa`: the help is the answer, not an error
            print(e.format_message())
            return 2
        command = getattr(getattr(e, "ctx", None), "command_path", "bertology")
        print(f"bertology: error: {_one_line(e.format_message())} (see {command} --help)", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except typer.Abort:
        print("bertology: aborted", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bertology: interrupted (training resumes from its last checkpoint with --resume)", file=sys.stderr)
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
