"""The data-scale experiment (`bertology align-scale`): identical bilingual models pretrained on N and 5N
sentences per language, tracking masked-LM loss and cross-lingual alignment (MRR) as they train."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from ..io.rundir import find_checkpoint, refuse_unless_resuming, save_pretrained_atomically
from ..io.storage import save_results
from .align import tracking_evaluator
from .pretrain import PretrainConfig, load_corpora, model_config, pretrain, train_tokenizer

SCHEMA = "bertology.align-scale/1"


@dataclass
class DataScaleRun:
    sentences_per_lang: int
    model_dir: str
    steps: int
    tokens_seen: int
    wall_time: float
    history: list[dict]                 # per evaluation: step, eval_loss, mrr, mrr_l*, ...
    train_log: list[dict]               # per log step: step, loss


@dataclass
class DataScaleResult:
    corpora: list[str]
    dictionary: str
    size: str
    sizes: list[int]
    steps: int
    runs: list[DataScaleRun]
    random_expected_mrr: float | None
    alignment_pairs: dict
    init_alignment: dict = field(default_factory=dict)   # the evaluator on the untrained model (same seed): step 0
    seconds: float = 0.0


def data_scale(corpora: list[str], dictionary: str, out_dir: str | Path, sentences: Sequence[int] = (10000, 50000),
               size: str = "tiny", steps: int = 2000, eval_every: int = 250, batch_size: int = 32, seq_len: int = 64,
               vocab_size: int = 8000, lr: float = 1e-3, precision: str = "fp32", seed: int = 0,
               align_corpora: dict[str, str] | None = None, convert: str | None = None, align_k: int = 3,
               align_max_words: int = 300, align_max_candidates: int = 2000, data_dir: str | None = None,
               progress: bool = True, after_each_run: Callable[[DataScaleResult], None] | None = None,
               resume: bool = False) -> DataScaleResult:
    """Pretrain identical bilingual models (same tokenizer, config, seed, steps) on N and 5N sentences per
    language, tracking masked-LM loss and alignment MRR at every evaluation: the lecture's 200K-vs-1,000K
    experiment. The tokenizer is trained once, on the largest sample, so only the amount of text differs.

    results.json is saved after each run, so a long experiment leaves a readable result even if stopped
    half-way; `after_each_run(result so far)` is called then too (the CLI draws the figure there)."""
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    sizes = _checked_sizes(sentences)
    started = [out_dir / f"n{n}" for n in sizes if find_checkpoint(out_dir / f"n{n}")]
    if started:
        refuse_unless_resuming(started[0], "a checkpoint of an earlier run", resume)
    tok_dir = out_dir / "tokenizer"
    if not (tok_dir / "tokenizer_config.json").exists():
        _train_shared_tokenizer(tok_dir, corpora, out_dir, sizes[-1], vocab_size, seed, data_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if not (tok_dir / "config.json").exists():
        # pretrain(tokenizer=DIR) resolves DIR as a model directory, which needs a config.json: store the
        # shared model config there (it is the same for every run anyway).
        save_pretrained_atomically(tok_dir, model_config(size, None, len(tokenizer), seq_len, 0.1))
    # evaluation text: the first lines of each language's first corpus (or of `align_corpora`, {lang: SOURCE})
    evaluator = tracking_evaluator(dictionary, [f"{l}={s}" for l, s in align_corpora.items()] if align_corpora
                                   else corpora, tokenizer, keep_line_caps=bool(align_corpora), convert=convert,
                                   seed=seed, data_dir=data_dir, k=align_k, max_words=align_max_words,
                                   max_candidates=align_max_candidates)
    # align records the conversion beside its coverage (AlignResult.convert); this result keeps it in it
    alignment_pairs = {**evaluator.coverage, "convert": evaluator.data.dictionary.convert}
    init_alignment = _untrained_alignment(evaluator, size, len(tokenizer), seq_len, seed)
    runs = []

    def result_so_far() -> DataScaleResult:
        return DataScaleResult(list(corpora), str(dictionary), size, sizes, steps, runs, evaluator.random_expected_mrr,
                               alignment_pairs, init_alignment, time.perf_counter() - t0)

    for n in sizes:
        cfg = PretrainConfig(corpora=list(corpora), out_dir=str(out_dir / f"n{n}"), tokenizer=str(tok_dir),
                             size=size, max_sentences_per_lang=n, max_length=seq_len, batch_size=batch_size,
                             max_steps=steps, lr=lr, precision=precision, seed=seed, eval_every=eval_every,
                             resume=find_checkpoint(out_dir / f"n{n}") is not None, data_dir=data_dir,
                             progress=progress)
        res = pretrain(cfg, eval_hooks=[evaluator])
        runs.append(DataScaleRun(n, res.model_dir, res.steps, res.tokens_seen, res.wall_time, res.history,
                                 res.train_log))
        result = result_so_far()
        _publish(result, out_dir, after_each_run)    # after every run, the last one included: saved once each
    return result


def _checked_sizes(sentences: Sequence[int]) -> list[int]:
    """The sample sizes, smallest first: at least two, each positive (one size compares nothing)."""
    sizes = sorted(int(n) for n in sentences)
    if len(sizes) < 2 or sizes[0] <= 0:
        raise UserError("`sentences` needs at least two positive sizes, e.g. 10000,50000", fields=('sentences',))
    return sizes


def _train_shared_tokenizer(tok_dir: Path, corpora: list[str], out_dir: Path, largest: int, vocab_size: int,
                            seed: int, data_dir: str | None) -> None:
    """One tokenizer for every run, trained on the largest sample, so that only the amount of text differs."""
    big = load_corpora(PretrainConfig(corpora=list(corpora), out_dir=str(out_dir), seed=seed,
                                       max_sentences_per_lang=largest, data_dir=data_dir))
    train_tokenizer(big, tok_dir, vocab_size, True, seed=seed)


def _untrained_alignment(evaluator, size: str, vocab_size: int, seq_len: int, seed: int) -> dict:
    """Step 0: alignment of the same random initialisation every run starts from (pretrain seeds before building
    the model)."""
    from transformers import BertForMaskedLM

    from ..core.engine import set_seed

    set_seed(seed)
    return evaluator(BertForMaskedLM(model_config(size, None, vocab_size, seq_len, 0.1)), 0, {})


def _publish(result: DataScaleResult, out_dir: Path, after_each_run) -> None:
    """results.json saved (so a stopped experiment leaves a readable result) and the caller told."""
    save(result, out_dir)
    if after_each_run:
        after_each_run(result)


def save(result: DataScaleResult, out_dir: str | Path) -> Path:
    return save_results(out_dir, SCHEMA, asdict(result))
