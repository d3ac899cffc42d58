"""QA runs: fine-tuning on the shared training engine (length-bucketed, dynamically padded batches, bf16,
resume, early stopping on dev F1), and the commands' orchestration: predict / eval a file, evaluate a model on
several sets, the cross-lingual experiment; what each saves in its run folder."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...checks import check_number
from ...core.precision import PRECISIONS
from ...core.vocab import unknown_token_share
from ...errors import UserError
from ...io.rundir import check_resume, save_pretrained_atomically
from ...io.squad import QADataset, load_squad
from ...metrics import qa_scores
from ..configs import QACrosslingualConfig, QASettings, TrainSettings, named_sets
from .features import fit_to_model, train_features, validate_settings
from .postprocess import Predictions
from .predict import answer, conversion_changes, pad_id, predict_converted
from .scoring import QAScore, load_predictions, resolve_lang, score, transfer_measures

SCHEMA = "bertology.qa/2"     # 2: settings.max_len -> max_length, batch_size -> eval_batch_size

# The lecture's table (F1 on DRCD dev, Traditional Chinese; Hsu, Liu & Lee 2019, "Zero-shot reading
# comprehension by cross-lingual transfer learning with multi-lingual language representation model").
LECTURE_DRCD_F1 = {
    "QANet, trained on Chinese": 78.1,
    "Chinese BERT, trained on Chinese": 89.1,
    "mBERT, trained on English SQuAD only": 78.8,
    "humans": 93.3,
}


# --------------------------------------------------------------------------------------------- training
@dataclass
class QATrainResult:
    model_dir: str                 # the fine-tuned model (a directory any --model accepts)
    train_files: list[str]
    train_questions: int
    train_windows: int
    answerless_windows: int        # windows labelled [CLS] because the answer lies outside them
    steps: int
    epochs_done: float
    best_step: int | None
    best_dev_f1: float | None
    wall_time: float
    tokens_per_s: float
    history: list[dict] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)


def check_train_settings(t: TrainSettings) -> None:
    """The fine-tuning numbers TrainSettings does not check as it is made, refused before the model loads and the
    data is tokenised: warmup and grad_accum are library knobs (no CLI flag), so they are not declared settings
    and carry no bounds; every other number (lr, epochs, max_steps, batch_size, ...) was checked then."""
    check_number("warmup", t.warmup, low=0)
    check_number("grad_accum", t.grad_accum, low=1, integer=True)


def load_data(name_or_path: str, data_dir: str | None = None, skip_bad: bool = False,
              require_answers: bool = True, check_offsets: bool = True, limit: int | None = None,
              seed: int = 0) -> QADataset:
    """A SQuAD-format file or data set name; check_offsets=False for data that is only scored (see load_squad).
    With `limit`, a seeded sample of that many questions in file order (QADataset.sample: parallel files such as
    XQuAD en / zh give the same questions for the same seed)."""
    from ...io.storage import find_dataset

    return load_squad(find_dataset(name_or_path, data_dir), skip_bad=skip_bad, require_answers=require_answers,
                      check_offsets=check_offsets).sample(limit, seed)


def load_sets(named: dict[str, str], data_dir: str | None, limit: int | None, seed: int, skip_bad: bool = False,
              check_offsets: bool = True) -> dict[str, QADataset]:
    """{name: the data set or file, sampled as load_data does}: the training and eval sets of an experiment."""
    return {name: load_data(f, data_dir, skip_bad=skip_bad, check_offsets=check_offsets, limit=limit, seed=seed)
            for name, f in named.items()}


def load_qa_model(model_name: str, trust_remote_code: bool):
    from ...core.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_name, trust_remote_code=trust_remote_code)
    model = load_model(model_name, head="qa", trust_remote_code=trust_remote_code)
    return model, tokenizer


def train(model_name: str, train_data: list[QADataset], dev: QADataset | None, out_dir: str | Path,
          s: QASettings = QASettings(), t: TrainSettings = TrainSettings(), dev_lang: str = "auto",
          trust_remote_code: bool = False, progress: bool = True):
    """Fine-tune `model_name` with a fresh span head on the training sets (concatenated); keep the weights
    with the best dev F1 (when a dev set is given). Returns (model, tokenizer, QATrainResult)."""
    from ...core.engine import ExampleBatches, TrainConfig, set_seed
    from ...core.engine import train as engine_train

    check_train_settings(t)
    validate_settings(s, PRECISIONS)      # bf16-verified is for prediction only
    out_dir = Path(out_dir)
    # what shapes the fine-tuned weights (not how often to evaluate or checkpoint, nor the eval batch size)
    shaping = {k: v for k, v in asdict(t).items() if k not in ("eval_every", "checkpoint_every", "patience",
                                                                "resume")}
    check_resume(out_dir / "train", {
        "model": model_name, "train": [[d.path, len(d.examples)] for d in train_data],
        **{k: v for k, v in asdict(s).items() if k in ("max_length", "doc_stride", "precision")}, **shaping},
        t.resume)
    # The new span head (`qa_outputs`) is initialised at random as the model loads: seeded first, so the same
    # --seed gives the same weights (the engine's own seeding comes after the model exists).
    set_seed(t.seed)
    model, tokenizer = load_qa_model(model_name, trust_remote_code)
    s = fit_to_model(tokenizer, model.config, s)
    examples = [e for d in train_data for e in d.examples]
    feats = train_features(tokenizer, examples, s)
    dev_lang = resolve_lang(dev_lang, dev.examples) if dev is not None else None
    quiet = QASettings(**{**asdict(s), "precision": "fp32"})   # the engine's autocast already applies

    def evaluate(m):
        p = answer(m, tokenizer, dev.examples, quiet, progress=False)
        r = qa_scores(dev.references(), p.answers, dev_lang)
        return {"f1": r["f1"], "exact_match": r["exact_match"]}
    config = TrainConfig(out_dir=out_dir / "train", lr=t.lr, weight_decay=t.weight_decay, warmup=t.warmup,
                         epochs=t.epochs, max_steps=t.max_steps, grad_accum=t.grad_accum, precision=s.precision,
                         seed=t.seed, eval_every=t.eval_every, checkpoint_every=t.checkpoint_every,
                         metric="f1" if dev is not None else "loss", greater_is_better=dev is not None,
                         patience=t.patience, resume=t.resume, progress=progress)
    batches = ExampleBatches(feats, t.batch_size, seed=t.seed, pad_id=pad_id(model))
    r = engine_train(model, batches, config, evaluate=evaluate if dev is not None else None)
    model_dir = save_pretrained_atomically(out_dir / "model", model, tokenizer)
    result = QATrainResult(
        model_dir=str(model_dir), train_files=[d.path for d in train_data], train_questions=len(examples),
        train_windows=len(feats), answerless_windows=sum(f["start_positions"] == 0 for f in feats),
        steps=r.steps, epochs_done=r.epochs_done, best_step=r.best_step,
        best_dev_f1=r.best_metric if dev is not None else None, wall_time=r.wall_time,
        tokens_per_s=r.tokens / max(r.wall_time, 1e-9), history=r.history, train_log=r.train_log)
    return model, tokenizer, result


# --------------------------------------------------------------------------------------------- experiments
@dataclass
class QAResult:
    """What every `bertology qa` command saves (schema bertology.qa/2)."""

    command: str                      # score | train | predict | eval | crosslingual
    model: str | None
    settings: dict | None
    scores: list[QAScore] = field(default_factory=list)
    train: QATrainResult | None = None
    predictions: dict[str, str] = field(default_factory=dict)    # predict / eval: question id -> answer
    nbest: dict[str, list[dict]] = field(default_factory=dict)
    questions_per_s: float | None = None                          # predict / eval: end-to-end throughput
    lecture_drcd_f1: dict = field(default_factory=lambda: dict(LECTURE_DRCD_F1))
    notes: list[str] = field(default_factory=list)

    def payload(self) -> dict:
        d = asdict(self)
        d.pop("predictions")          # written to predictions.json / nbest.json, not results.json
        d.pop("nbest")
        return d


def save(result: QAResult, out_dir: str | Path) -> Path:
    """results.json (bertology.qa/2), with predictions.json + nbest.json when there are predictions."""
    from ...io.storage import atomic_write_json, save_results

    out_dir = Path(out_dir)
    if result.predictions:
        atomic_write_json(out_dir / "predictions.json", result.predictions)
    if result.nbest:
        atomic_write_json(out_dir / "nbest.json", result.nbest)
    return save_results(out_dir, SCHEMA, result.payload())


def predict_file(command: str, model_name: str, dataset: QADataset, s: QASettings, lang: str = "auto",
                 convert: str | None = None, trust_remote_code: bool = False, progress: bool = True) -> QAResult:
    """`qa predict` (answers only) and `qa eval` (answers + official scores; with `convert`, Chinese data is
    scored both as is and after OpenCC conversion)."""
    from ...core.models import has_qa_head, pick_device, resolve_model, weight_names

    s = validate_settings(s)       # before the model loads
    if weight_names(resolve_model(model_name)) is not None and not has_qa_head(model_name):
        raise UserError(f"model {model_name!r} has no trained span head (no `qa_outputs` weights): its answers "
                        f"would be random. Fine-tune it first with `bertology qa train` and pass OUT/model")
    model, tokenizer = load_qa_model(model_name, trust_remote_code)
    model.to(pick_device())
    s = fit_to_model(tokenizer, model.config, s)
    name = Path(dataset.path).stem
    notes: list[str] = []
    if command == "eval":
        scores, preds_by, notes = evaluate_sets(model, tokenizer, {name: dataset}, s, lang, convert, progress)
        p = preds_by[name]
        return QAResult(command, model_name, asdict(s), scores, predictions=p.answers, nbest=p.nbest,
                        questions_per_s=scores[0].total / scores[0].seconds, notes=notes)
    if convert:
        preds, _, unaligned = predict_converted(model, tokenizer, dataset, convert, s, progress)
        if unaligned:
            notes.append(f"{unaligned} contexts changed length under OpenCC; their answers are in the converted "
                         f"script")
    else:
        preds = answer(model, tokenizer, dataset.examples, s, progress=progress)
    if preds.rerun:
        notes.append(f"bf16-verified: {preds.rerun} of {len(preds.answers)} questions re-run in fp32 (near-ties)")
    return QAResult(command, model_name, asdict(s), [], predictions=preds.answers, nbest=preds.nbest,
                    questions_per_s=preds.questions_per_s, notes=notes)


def evaluate_sets(model, tokenizer, evals: dict[str, QADataset], s: QASettings, lang: str = "auto",
                  convert: str | None = None, progress: bool = True) -> tuple[list[QAScore], dict, list[str]]:
    """Predict (settings validated: predict.answer) and score every eval set; with `convert`, Chinese sets are scored a second time after OpenCC
    conversion. Returns (scores, {name: Predictions}, notes)."""
    scores, preds_by_name, notes = [], {}, []
    for name, ds in evals.items():
        ds_lang = resolve_lang(lang, ds.examples)
        with _kept_in(notes, "oneDNN fusion"):      # modules the bf16 path could not fuse: said in results.json
            p = answer(model, tokenizer, ds.examples, s, progress=progress)
        if p.rerun:
            notes.append(f"{name}: bf16-verified re-ran {p.rerun} of {len(p.answers)} questions in fp32 (near-ties)")
        sc = score(ds, p.answers, ds_lang, name)
        sc.windows, sc.seconds = p.windows, p.seconds
        scores.append(sc)
        preds_by_name[name] = p
        if convert and ds_lang == "zh" and conversion_changes(ds, convert):
            pc, refs, unaligned = predict_converted(model, tokenizer, ds, convert, s, progress=progress)
            r = qa_scores(refs, pc.answers, "zh")
            scores.append(QAScore(f"{name} [{convert}]", ds.path, "zh", r["exact_match"], r["f1"], r["total"],
                                  r["missing"], ds.skipped, ds.relocated, convert, pc.windows, pc.seconds))
            preds_by_name[f"{name} [{convert}]"] = pc
            if unaligned:
                notes.append(f"{name} [{convert}]: {unaligned} contexts changed length under OpenCC; those "
                             f"questions were scored in the converted script")
    return scores, preds_by_name, notes


@contextlib.contextmanager
def _kept_in(notes: list[str], prefix: str):
    """Warnings starting with `prefix` raised inside are shown as usual and also kept (once) in `notes`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        message = str(w.message)
        if message.startswith(prefix) and message not in notes:
            notes.append(message)
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def evaluate_model(model_name: str, eval_sets: dict[str, QADataset], out_dir: str | Path, s: QASettings,
                   convert: str | None = None, trust_remote_code: bool = False, progress: bool = True) -> QAResult:
    """A model that already has a trained span head, evaluated as it is (validated settings) on every eval set;
    each set's predictions written to out_dir (predictions_path)."""
    model, tokenizer = load_qa_model(model_name, trust_remote_code)
    s = fit_to_model(tokenizer, model.config, s)
    scores, preds, notes = evaluate_sets(model, tokenizer, eval_sets, s, convert=convert, progress=progress)
    write_predictions(out_dir, preds)
    return QAResult("eval", model_name, asdict(s), scores, notes=notes)


def crosslingual(cfg: QACrosslingualConfig, train_sets: dict[str, QADataset], evals: dict[str, QADataset],
                 dev: QADataset | None = None, progress: bool = True) -> QAResult:
    """One fine-tuning run of `cfg` on `train_sets` (e.g. {"en": SQuAD}), evaluated zero-shot on every eval set;
    the data already assembled (run_crosslingual assembles it from the config)."""
    s, t = cfg.settings()
    model, tokenizer, tr = train(cfg.model, list(train_sets.values()), dev, cfg.out, s, t,
                                 trust_remote_code=cfg.trust_remote_code, progress=progress)
    s = fit_to_model(tokenizer, model.config, s)
    scores, preds, notes = evaluate_sets(model, tokenizer, evals, s, convert=cfg.convert, progress=progress)
    for name, ds in evals.items():
        if resolve_lang("auto", ds.examples) == "zh":
            rate = unknown_token_share(tokenizer, list(dict.fromkeys(e.context for e in ds.examples))[:200])
            notes.append(f"{name}: {100 * rate:.1f}% of context tokens are [UNK] for this tokenizer")
    write_predictions(cfg.out, preds)
    notes.insert(0, "trained on " + ", ".join(f"{k}={len(v.examples)} questions" for k, v in train_sets.items()))
    return QAResult("crosslingual", cfg.model, asdict(s), scores, tr, {}, notes=notes)


def run_crosslingual(cfg: QACrosslingualConfig, progress: bool = True) -> QAResult:
    """The cross-lingual experiment as configured (`bertology qa crosslingual` and the report's QA section both run
    this): its data assembled from the config (the --train LANG=FILE sets, each a seeded sample of --max-train
    questions; the eval sets, `eval_sets`; the dev set, --max-dev questions), one fine-tuning run (`crosslingual`),
    every eval set scored zero-shot and its predictions written to cfg.out. With `reuse_trained_head`, a model that
    already has a trained span head (OUT/model of `qa train`) is evaluated as it is instead: no training set is
    read, nothing is trained, and the result's command is "eval"."""
    from ...core.models import has_qa_head

    if cfg.reuse_trained_head and has_qa_head(cfg.model):
        result = evaluate_model(cfg.model, eval_sets(cfg), cfg.out, cfg.settings()[0], cfg.convert, cfg.trust_remote_code, progress)
        result.notes.insert(0, "the model already has a trained span head: evaluated as it is, not fine-tuned")
        return result
    train_sets = load_sets(dict(named_sets(cfg.train, "--train")), cfg.data_dir, cfg.max_train, cfg.seed,
                           skip_bad=cfg.skip_bad)
    evals = eval_sets(cfg)
    dev = cfg.read(cfg.dev, cfg.max_dev, check_offsets=False) if cfg.dev else None
    return crosslingual(cfg, train_sets, evals, dev, progress)


def eval_sets(cfg: QACrosslingualConfig, only: tuple[str, ...] | None = None) -> dict[str, QADataset]:
    """The config's eval sets (--eval NAME=FILE; `only`: just those names), each a seeded sample of --limit
    questions (parallel files such as XQuAD en / zh give the same questions). Their answer offsets are not checked
    (check_offsets=False): eval answers are only scored, by their text, as the official SQuAD v1.1 and CMRC 2018
    scripts do, so an answer whose `answer_start` is off (or whose text is not verbatim in the context) is still a
    question to answer, not a reason to stop."""
    named = dict(named_sets(cfg.eval, "--eval"))
    if only is not None:
        missing = [n for n in only if n not in named]
        if missing:
            raise UserError(f"`eval` names no set {missing[0]!r} (it has {', '.join(named)})", ("eval",))
        named = {n: named[n] for n in only}
    return load_sets(named, cfg.data_dir, cfg.limit, cfg.seed, skip_bad=cfg.skip_bad, check_offsets=False)


def predictions_path(out_dir: str | Path, name: str) -> Path:
    """Where `write_predictions` puts one eval set's official predictions JSON."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_")
    return Path(out_dir) / f"predictions_{safe}.json"


def write_predictions(out_dir: str | Path, preds_by_name: dict[str, Predictions]) -> None:
    from ...io.storage import atomic_write_json

    for name, p in preds_by_name.items():
        atomic_write_json(predictions_path(out_dir, name), p.answers)


def measure_transfer(cfg: QACrosslingualConfig, zh_name: str, en_name: str) -> dict:
    """scoring.transfer_measures of the predictions that run_crosslingual(cfg) wrote to cfg.out for two of its eval
    sets, parallel ones (XQuAD zh / en: the same questions for the same seed), read again as the run read them."""
    sets = eval_sets(cfg, only=(zh_name, en_name))
    return transfer_measures(sets[zh_name].examples, load_predictions(predictions_path(cfg.out, zh_name)),
                             sets[en_name].examples, load_predictions(predictions_path(cfg.out, en_name)))
