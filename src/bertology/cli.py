"""The `bertology` command: wiring only. Each command's options are generated from its experiment's config
dataclass (bertology.cli_options); the command builds the config (validated as it is made), calls the
experiment, saves its result (results.json + figures) and prints a summary. User mistakes (`UserError`) become
exit code 2 with one line naming the flag.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import List, Optional

import typer

from .cli_options import command, describe_error, quiet_libraries, run_app
from .config import narrowed
from .experiments.configs import (AlignConfig, CbowConfig, ClozeConfig, CrossDomainCommand, CrossDomainConfig,
                                  DataScaleConfig, FillMaskConfig, LangvecConfig, PretrainCommand, PretrainConfig,
                                  QACrosslingualConfig, QAPredictConfig, QAScoreConfig, QASettings, QATrainConfig,
                                  SensesConfig, TokenizerConfig)
from .io.storage import save_results
from .report import ReportConfig
from .serve.server import ServeCommand

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="See why BERT works: the experiments of 'Self-supervised learning: BERT explained' "
                       "(Hung-yi Lee, ML 2021) on any BERT-family model. Every command writes --out DIR/"
                       "results.json (versioned schema, see docs/results.md) and PNG figures.")
tokenizer_app = typer.Typer(no_args_is_help=True, help="Train WordPiece vocabularies.")
app.add_typer(tokenizer_app, name="tokenizer")
qa_app = typer.Typer(no_args_is_help=True, help="Extractive QA (SQuAD format) and cross-lingual zero-shot "
                                                "transfer: fine-tune on English, answer in Chinese.")
app.add_typer(qa_app, name="qa")


def _measured(value: Optional[float]) -> str:
    """A score as printed: None (nothing to measure it on) is said, not shown as 0.000."""
    return "not measured" if value is None else f"{value:.3f}"


@app.callback()
def _root():
    """See why BERT works (run `bertology COMMAND --help` for each experiment)."""


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


# ==== word senses, CBOW, report ================================================================================
@command(app, "senses", SensesConfig)
def senses_cmd(cfg: SensesConfig):
    """Word senses: embed every occurrence of a target at every layer; cosine heatmap and per-layer
    separation of the labelled senses (within-sense minus between-sense cosine, silhouette, purity)."""
    from .experiments import senses
    from .report.figures import senses_figures

    result = senses.run(cfg)
    senses.save(result, cfg.out)
    senses_figures(result, cfg.out)
    typer.echo(senses.summary(result) + f"\nwrote {cfg.out}/results.json")


@command(app, "cbow", CbowConfig)
def cbow_cmd(cfg: CbowConfig):
    """Train a static word2vec CBOW baseline (gensim): one vector per word, whatever its context.
    Use it with `bertology senses --static OUT`."""
    from .experiments import cbow

    done = cbow.run(cfg)
    result = done.result
    cbow.save(result, cfg.out, done.neighbours)
    typer.echo(f"CBOW: {result.vocab_size:,} words from {result.sentences:,} lines in {result.seconds:.1f} s")
    for t, near in done.neighbours.items():
        typer.echo(f"{t}: " + ", ".join(f"{w} {c:.2f}" for w, c in near))
    typer.echo(f"wrote {cfg.out}/cbow.bin and {cfg.out}/results.json")


@command(app, "report", ReportConfig)
def report_cmd(cfg: ReportConfig):
    """Run every experiment on one or more models (--model A --model B: side by side) and write OUT/index.html:
    one self-contained page with every figure, the numbers and a short explanation per section. Sections no
    chosen model can run (e.g. Chinese on an English-only vocabulary, fill-mask without an MLM head) run on
    --fallback-model, the bilingual model shipped with bertology, and say so; without one they appear with
    the reason."""
    from .core.models import resolve_model
    from .report import build_report

    for m in cfg.model:
        resolve_model(m)
    if cfg.fallback_model:
        resolve_model(cfg.fallback_model)

    def echo_section(s) -> None:     # as each section ends (click flushes: visible in a log file too)
        typer.echo(f"{'skipped' if s.error else 'ok':8s} {s.seconds:7.1f} s  {s.title}"
                   + (f"  ({s.error.splitlines()[0][:100]})" if s.error else ""))

    page, _ = build_report(cfg.model, cfg.out, data_dir=cfg.data_dir, precision=cfg.precision, seed=cfg.seed,
                           quick=not cfg.full, only=cfg.only or None, trust_remote_code=cfg.trust_remote_code,
                           describe_error=describe_error, fallback_model=cfg.fallback_model or None,
                           keep_models=cfg.keep_models, on_section=echo_section)
    typer.echo(f"wrote {page}")


# ==== pretraining, tokenizer, fill-mask, cloze =================================================================
@command(tokenizer_app, "train", TokenizerConfig)
def tokenizer_train_cmd(cfg: TokenizerConfig):
    """Train a BERT WordPiece tokenizer (every CJK character its own token, punctuation split) with
    language-balanced sampling; OUT loads with AutoTokenizer.from_pretrained and works as --tokenizer."""
    from .experiments.pretrain import TOKENIZER_SCHEMA, train_tokenizer
    from .io.corpora import read_corpora

    _, res = train_tokenizer(read_corpora(cfg.corpus, cfg.data_dir), cfg.out, cfg.vocab_size, cfg.lowercase, None, cfg.alpha, cfg.budget_tokens,
                             cfg.seed, alphabet_size=cfg.alphabet_size)
    save_results(cfg.out, TOKENIZER_SCHEMA, {"corpora": cfg.corpus, **asdict(res)})
    print(f"vocabulary of {res.vocab_size} ({res.cjk_chars_in_vocab} CJK characters) written to {cfg.out}")


@command(app, "pretrain", PretrainCommand)
def pretrain_cmd(cfg: PretrainCommand):
    """Pretrain a BERT with masked-LM from scratch (packed sequences, 15% 80/10/10 masking by default, AdamW).

    Writes OUT/model (a model directory, refreshed at every evaluation), OUT/checkpoint (for --resume), log.jsonl,
    eval.jsonl, results.json, loss_curve.png. Runs under `torchrun --nproc_per_node=N` (docs/pretrain.md).
    """
    from .core.engine import is_main_process
    from .experiments.pretrain import pretrain
    from .report.figures import pretrain_figures

    res = pretrain(narrowed(cfg, PretrainConfig), eval_hooks=cfg.eval_hooks())
    if not is_main_process():     # under torchrun only rank 0 writes and evaluates
        return

    pretrain_figures(res.train_log, res.history, cfg.out_dir)
    if res.final:
        print(f"{res.steps} steps, {res.tokens_per_s:.0f} tokens/s; held-out loss {_measured(res.final.get('eval_loss'))}, "
              f"masked-token accuracy {_measured(res.final.get('eval_acc'))}; model in {res.model_dir}")


@command(app, "fill-mask", FillMaskConfig)
def fill_mask_cmd(cfg: FillMaskConfig):
    """Fill in the blank: the top-k tokens and probabilities for every [MASK] (needs a model with an MLM head)."""
    from .experiments import mlm

    res = mlm.run(cfg)
    for it in res.items:
        print(it["text"])
        for j, m in enumerate(it["masks"]):
            print(f"  [MASK] {j + 1}: " + "  ".join(f"{c['token']} {c['prob']:.3f}" for c in m["candidates"]))
    if cfg.out is not None:
        from .report.figures import fill_mask_figures

        save_results(cfg.out, mlm.FILL_MASK_SCHEMA, asdict(res))
        fill_mask_figures(res, cfg.out)


@command(app, "cloze", ClozeConfig)
def cloze_cmd(cfg: ClozeConfig):
    """Cloze accuracy: top-1 / top-5 of the masked-LM head on fill-in-the-blank items, per language; with
    --baselines, top-1 against unigram and left-neighbour bigram predictors from the pretraining corpora."""
    from .experiments import cloze

    res = cloze.run(cfg)
    for lang, s in res.summary.items():
        print(f"{lang}: top-1 {_measured(s['top1'])}  top-5 {_measured(s['top5'])}  ({s['n']} items, "
              f"{s['unscorable']} answers not a single token)")
    for line in _cloze_baseline_lines(res):
        print(line)
    if cfg.out is not None:
        cloze.save(res, cfg.out)


def _cloze_baseline_lines(res) -> list[str]:
    """With --baselines: the n-gram predictors' top-1 beside the model's, and the model's paired advantage."""
    b = res.baselines
    if not b:
        return []
    if "not_applicable" in b:
        return [f"baselines: not applicable: {b['not_applicable']}"]
    lines = ", ".join(f"{n:,} {lang}" for lang, n in b["corpus_lines"].items())
    ci = ", ".join("not measured" if v is None or v != v else f"{v:+.3f}" for v in b["ci"])   # v != v: NaN
    rank = res.lecture["rank"]
    return [f"top-1 on the {b['items']} scorable items {b['top1']:.3f}; unigram {b['unigram']:.3f}, left-neighbour "
            f"bigram {b['bigram']:.3f} (counted on {lines} corpus lines)",
            f"model − {b['stronger']}: {b['effect']:+.3f}, 95% CI [{ci}]; {res.lecture['sentence']} → "
            f"{res.lecture['answer']} " + (f"at rank {rank}" if rank else "not in the top 5")]


# ==== cross-disciplinary transfer ==============================================================================
@command(app, "crossdomain", CrossDomainCommand)
def crossdomain_cmd(cfg: CrossDomainCommand):
    """Cross-disciplinary transfer (Kao & Lee 2021): fine-tune a text-pretrained BERT on DNA / protein / music
    sequences written as random English words, against the same network from scratch and controls.

    Writes results.json (bertology.crossdomain/1), conditions.png (bars, mean ± std over seeds) and learning_curves.png. Add --resume to continue an interrupted experiment.
    """
    from .experiments.crossdomain import run_crossdomain, save, summary_rows
    from .report.figures import crossdomain_figures

    result = run_crossdomain(narrowed(cfg, CrossDomainConfig), cfg.out)
    crossdomain_figures(result, cfg.out)    # before saving: results.json lists the figures
    save(result, cfg.out)
    if result.skipped_rows:
        typer.echo(f"skipped {len(result.skipped_rows)} bad rows (listed in results.json), e.g. {result.skipped_rows[0]}",
                   err=True)
    for row in summary_rows(result.summary):
        typer.echo("  ".join(f"{k}={v}" for k, v in row.items()))
    typer.echo(f"wrote {cfg.out / 'results.json'}")


# ==== question answering =======================================================================================
def _qa_save(result, out) -> None:
    """results.json (+ predictions, n-best) and the figures that apply."""
    from .experiments import qa
    from .report.figures import qa_figures

    qa_figures(result, out)
    qa.save(result, out)


@command(qa_app, "score", QAScoreConfig)
def qa_score_cmd(cfg: QAScoreConfig):
    """Score predictions with the official metrics: exact_match and f1 (0-100), total, missing (unanswered
    questions count as 0)."""
    from .experiments import qa

    # scored data: answer texts only, as the official scripts (no offset validation)
    ds = qa.load_data(cfg.data, cfg.data_dir, skip_bad=cfg.skip_bad, check_offsets=False)
    sc = qa.score(ds, qa.load_predictions(cfg.predictions), cfg.lang)
    typer.echo(sc.line())
    if cfg.out:
        _qa_save(qa.QAResult("score", None, None, [sc]), cfg.out)
        typer.echo(f"wrote {cfg.out}/results.json")


@command(qa_app, "train", QATrainConfig, omit=("span_score", "verify_margin"))
def qa_train_cmd(cfg: QATrainConfig):
    """Fine-tune a span-extraction head: sliding windows over long contexts, answer span labelled in the
    window that holds it ([CLS] elsewhere), shared engine (bf16, resume, progress). Writes OUT/model (use it as
    --model), OUT/train/ (checkpoint, log.jsonl), results.json and qa_training.png."""
    from .experiments import qa

    s, t = cfg.settings()
    train_sets, dev_set = cfg.read_sets()
    _, _, tr = qa.train(cfg.model, train_sets, dev_set, cfg.out, s, t, dev_lang=cfg.lang,
                        trust_remote_code=cfg.trust_remote_code)
    _qa_save(qa.QAResult("train", cfg.model, qa.asdict(s), [], tr), cfg.out)
    typer.echo(f"{tr.steps} steps on {tr.train_windows} windows in {tr.wall_time:.0f} s"
               + (f"; best dev F1 {tr.best_dev_f1:.2f} at step {tr.best_step}" if tr.best_dev_f1 is not None else ""))
    typer.echo(f"wrote {tr.model_dir} and {cfg.out}/results.json")


def _qa_predict_or_eval(command_name: str, cfg: QAPredictConfig) -> None:
    from .experiments import qa

    result = qa.predict_file(command_name, cfg.model, cfg.read(require_answers=command_name == "eval"), narrowed(cfg, QASettings), lang=cfg.lang,
                             convert=cfg.convert, trust_remote_code=cfg.trust_remote_code)
    _qa_save(result, cfg.out)
    for sc in result.scores:
        typer.echo(sc.line())
    typer.echo(f"{len(result.predictions)} questions answered; wrote {cfg.out}/predictions.json, nbest.json, "
               f"results.json")


@command(qa_app, "predict", QAPredictConfig, omit=("lang",))
def qa_predict_cmd(cfg: QAPredictConfig):
    """Answer questions with a QA model (e.g. OUT/model from `qa train`): n-best span search over every
    window, answers cut from the original context. Writes predictions.json (official format) and nbest.json."""
    _qa_predict_or_eval("predict", cfg)


@command(qa_app, "eval", QAPredictConfig)
def qa_eval_cmd(cfg: QAPredictConfig):
    """Predict and score with the official metrics (SQuAD v1.1 for English, CMRC 2018 for Chinese)."""
    _qa_predict_or_eval("eval", cfg)


@command(qa_app, "crosslingual", QACrosslingualConfig, omit=("span_score", "verify_margin", "patience", "lang"))
def qa_crosslingual_cmd(cfg: QACrosslingualConfig):
    """The lecture's experiment: one fine-tuning run (e.g. English SQuAD only), evaluated zero-shot on every
    eval set (SQuAD dev, XQuAD-en/zh, DRCD dev, CMRC trial...). Prints a table next to the lecture's
    (mBERT en->zh DRCD 78.8 F1); writes results.json, qa_scores.png, qa_training.png, predictions_*.json."""
    from .experiments import qa

    result = qa.run_crosslingual(cfg)
    _qa_save(result, cfg.out)
    for sc in result.scores:
        typer.echo(sc.line())
    for k, v in qa.LECTURE_DRCD_F1.items():
        typer.echo(f"{'lecture: ' + k:40s} F1 {v:5.1f}  (DRCD dev)")
    for n in result.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"wrote {cfg.out}/results.json")


# ==== cross-lingual alignment and language vectors =============================================================
@command(app, "align", AlignConfig)
def align_cmd(cfg: AlignConfig):
    """Cross-lingual alignment: MRR (and P@1, P@5) per layer of ranking each source word's translations among
    all candidate target words, by cosine and CSLS; contextual and context-free word vectors, with CBOW and
    random baselines. Writes OUT/results.json and OUT/mrr_per_layer.png."""
    from .experiments import align
    from .report.figures import align_figures

    res = align.run(cfg)
    align.save(res, cfg.out)
    align_figures(res, cfg.out)
    print(align.summary(res, cfg.out))


@command(app, "langvec", LangvecConfig)
def langvec_cmd(cfg: LangvecConfig):
    """Language vectors and mean-shift translation: add α·(μ_target − μ_source) at layer L to source sentences,
    let the MLM head fill every position, and score token-translation precision against the dictionary for
    each (L, α). Needs a model with an MLM head. Writes OUT/results.json and OUT/langvec_grid.png."""
    from .experiments import langvec
    from .report.figures import langvec_figures

    res = langvec.run(cfg)
    langvec.save(res, cfg.out)
    langvec_figures(res, cfg.out)
    b = res.best
    print(f"best: layer {b['layer']}, α {b['alpha']:g}: precision {b['precision']:.3f} over {b['scored_words']} "
          f"words, {b['target_script_rate']:.2f} of tokens in {res.target_lang} script. Results in {cfg.out}")


@command(app, "align-scale", DataScaleConfig)
def align_scale_cmd(cfg: DataScaleConfig):
    """The data-scale experiment: pretrain identical bilingual models on N and 5N sentences per language and
    plot masked-LM loss and alignment MRR against steps (OUT/data_scale.png; each run in OUT/n<N>/)."""
    from .experiments.data_scale import data_scale
    from .report.figures import data_scale_figures

    res = data_scale(cfg.corpus, cfg.dict_path, cfg.out, cfg.sentences, cfg.size, cfg.max_steps, cfg.eval_every,
                     cfg.batch_size, cfg.max_length, cfg.vocab_size, cfg.lr, cfg.precision, cfg.seed,
                     convert=cfg.convert, data_dir=cfg.data_dir, resume=cfg.resume,
                     after_each_run=lambda partial: data_scale_figures(partial, cfg.out))
    for run in res.runs:
        last = run.history[-1] if run.history else {}
        print(f"{run.sentences_per_lang:,} sentences/lang: loss {_measured(last.get('eval_loss'))}, "
              f"MRR {last.get('mrr', float('nan')):.4f} (random {res.random_expected_mrr or float('nan'):.4f})")


# ==== the interactive explorer =================================================================================
@command(app, "serve", ServeCommand)
def serve_cmd(cfg: ServeCommand):
    """Interactive explorer in the browser: word senses, fill-mask, neighbours across languages, language
    vectors and attention, on the models of the picker, one or two side by side (see docs/serve.md)."""
    from .serve.server import run_server

    run_server(cfg.model, cfg.host, cfg.port, cfg.data_dir, cfg.precision, cfg.trust_remote_code)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: exit 0 on success, 2 on a user mistake (one line on stderr), 1 on a bug (traceback)."""
    quiet_libraries()
    return run_app(app, list(sys.argv[1:] if argv is None else argv), describe_error)


if __name__ == "__main__":
    sys.exit(main())
