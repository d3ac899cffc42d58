"""The training engine shared by every experiment that trains (fine-tuning, QA, masked-LM pretraining).

One loop you can read top to bottom (`train`), in the spirit of nanoGPT:
    batches -> forward under autocast -> loss x (its share of the accumulated batch) -> backward -> clip -> AdamW step -> LR schedule
    -> every `eval_every` steps: evaluate, keep the best weights, early-stop, checkpoint.

What it guarantees:
- Dynamic padding and length-bucketed batches (`length_batches`, `pad_batch`): little compute goes to padding.
- `--precision bf16`: autocast with fp32 master weights.
- Checkpoints are written atomically (a new directory renamed into place) and hold the model, optimizer,
  scheduler, every RNG state and the data position, so `resume=True` continues a run killed at any moment
  (SIGKILL included) and reaches the same weights as a run never interrupted.
- Multi-process: run the same command under `torchrun`; each rank gets its slice of every batch list
  (`Batches.__call__(epoch, rank, world)`), DDP averages gradients, only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch

from ..checks import check_number
from ..errors import UserError
from .models import pick_device
from .precision import autocast
from ..io.rundir import (BEST_WEIGHTS, CHECKPOINT, atomic_dir, atomic_write_with, find_checkpoint, save_weights)
from ..io.storage import truncate_jsonl


# --------------------------------------------------------------------------------------------- batching
def length_batches(lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0,
                   bucket_factor: int = 50, max_tokens: int | None = None) -> list[list[int]]:
    """Group example indices into batches of similar length.

    With shuffle: indices are shuffled, cut into chunks of `bucket_factor` batches, each chunk sorted by
    length and cut into batches, then the batch order is shuffled — random, yet little padding. Without
    shuffle (inference): all examples sorted by length, longest first (so memory peaks come early); with
    `max_tokens` (inference only) a batch takes examples while rows x its longest (the padded tokens) stays
    within the budget (`batch_size` is then unused): many short inputs per batch, few long ones.
    """
    idx = list(range(len(lengths)))
    if not shuffle:
        idx.sort(key=lambda i: -lengths[i])
        if max_tokens is None:
            return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        batches, current = [], []
        for i in idx:                            # longest first: a batch's first row is its longest
            if current and (len(current) + 1) * max(1, lengths[current[0]]) > max_tokens:
                batches.append(current)
                current = []
            current.append(i)
        return batches + ([current] if current else [])
    rng = random.Random(seed)
    rng.shuffle(idx)
    chunk = batch_size * bucket_factor
    batches = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c:c + chunk], key=lambda i: lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(examples: Sequence[dict[str, Any]], pad_id: int = 0, label_pad: int = -100) -> dict[str, torch.Tensor]:
    """Pad a list of tokenised examples to the longest one in the batch (dynamic padding).

    List-valued fields are padded: `input_ids` with `pad_id`, `labels` with `label_pad` when they are
    per-token, `token_type_ids` with 0; `attention_mask` is built if absent. Scalars are stacked.
    """
    out: dict[str, torch.Tensor] = {}
    width = max(len(e["input_ids"]) for e in examples)
    for key in examples[0]:
        vals = [e[key] for e in examples]
        if isinstance(vals[0], (list, tuple, np.ndarray, torch.Tensor)) and len(vals[0]) == len(examples[0]["input_ids"]):
            fill = pad_id if key == "input_ids" else (label_pad if key == "labels" else 0)
            arr = torch.full((len(vals), width), fill, dtype=torch.long)
            for i, v in enumerate(vals):
                arr[i, :len(v)] = torch.as_tensor(v, dtype=torch.long)
            out[key] = arr
        else:
            out[key] = torch.as_tensor(vals)
    if "attention_mask" not in out:
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            mask[i, :len(e["input_ids"])] = 1
        out["attention_mask"] = mask
    return out


class Batches(Protocol):
    """What `train` consumes: for an epoch (and this process's rank), the list of batches, deterministic in
    (seed, epoch) so that a resumed run can skip exactly the batches already done."""

    def __call__(self, epoch: int, rank: int = 0, world: int = 1) -> Sequence[dict[str, torch.Tensor]]: ...


@dataclass
class ExampleBatches:
    """`Batches` over a list of tokenised examples: length-bucketed, shuffled per epoch, padded on demand."""

    examples: Sequence[dict[str, Any]]
    batch_size: int
    seed: int = 0
    pad_id: int = 0

    def __call__(self, epoch: int, rank: int = 0, world: int = 1):
        lengths = [len(e["input_ids"]) for e in self.examples]
        groups = length_batches(lengths, self.batch_size * world, shuffle=True, seed=self.seed * 100003 + epoch)
        # Each rank takes a strided slice of every global batch, so world×B per step whatever the world size.
        return _LazyBatches([[self.examples[i] for i in g[rank::world]] for g in groups if len(g[rank::world])],
                            self.pad_id)


class _LazyBatches(Sequence):
    def __init__(self, groups, pad_id):
        self.groups, self.pad_id = groups, pad_id

    def __len__(self):
        return len(self.groups)

    def __getitem__(self, i):
        return pad_batch(self.groups[i], self.pad_id)


# --------------------------------------------------------------------------------------------- config / result
@dataclass
class TrainConfig:
    out_dir: str | Path | None = None     # checkpoints and log.jsonl; None: nothing written
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1                   # < 1: fraction of total steps; >= 1: number of steps
    epochs: float = 3.0
    max_steps: int | None = None          # overrides epochs when set
    grad_accum: int = 1
    clip: float = 1.0
    precision: str = "fp32"
    seed: int = 0
    eval_every: int | None = None         # optimizer steps between evaluations; None: once per epoch
    checkpoint_every: int | None = None   # optimizer steps between checkpoints; None: at every evaluation
    metric: str = "loss"                  # key of evaluate()'s dict that decides the best model
    greater_is_better: bool = False
    patience: int | None = None           # early stopping: evaluations without improvement
    restore_best: bool = True             # load the best weights at the end
    resume: bool = False
    progress: bool = True
    device: str | None = None
    log_every: int = 10
    # AdamW(fused=True) + foreach clipping: one kernel for all parameters instead of ~10 small ops per tensor
    # (fine-tuning minilm: clip + step 3x faster, bench/hotpaths.py). None: fused where torch supports it for
    # the model's parameters (make_optimizer), the same update up to float rounding.
    fused_optimizer: bool | None = None


@dataclass
class TrainResult:
    steps: int
    epochs_done: float
    best_step: int | None
    best_metric: float | None
    history: list[dict] = field(default_factory=list)   # one entry per evaluation
    train_log: list[dict] = field(default_factory=list) # one entry per `log_every` steps
    wall_time: float = 0.0
    tokens: int = 0
    examples: int = 0
    stopped_early: bool = False


# --------------------------------------------------------------------------------------------- distributed
def dist_info() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """Rank 0 (or a plain process): the one that writes files and prints under torchrun."""
    return dist_info()[0] == 0


def init_distributed(device: torch.device) -> tuple[int, int]:
    rank, world = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    return rank, world


def shutdown_distributed() -> None:
    """Barrier then destroy: without it 2-process gloo runs can abort at interpreter exit."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


# --------------------------------------------------------------------------------------------- seeds & RNG state
def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------- checkpoints
def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_checkpoint(out_dir: Path, model, optimizer, scheduler, state: dict) -> Path:
    """Write out_dir/checkpoint as a whole (rundir.atomic_dir): weights, then optimizer / scheduler / RNG state."""
    with atomic_dir(out_dir / CHECKPOINT) as tmp:
        save_weights(tmp / "model.safetensors",
                     {k: v.detach().contiguous().cpu() for k, v in _unwrap(model).state_dict().items()})
        atomic_write_with(tmp / "state.pt", lambda path: torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state(),
             **state}, path))
    return out_dir / CHECKPOINT


@contextlib.contextmanager
def _checkpoint_file(path: Path):
    """A checkpoint file cut short (a full disk, a copy interrupted) or not ours is a UserError naming it."""
    from ..errors import UserError

    try:
        yield
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as e:
        raise UserError(f"{path}: damaged checkpoint ({(str(e).splitlines() or [type(e).__name__])[0][:160]}); "
                        f"delete it to start afresh") from None


def read_checkpoint_state(path: Path) -> dict:
    """The optimizer / scheduler / step state of a checkpoint (weights_only: tensors and plain data only)."""
    with _checkpoint_file(path / "state.pt"):
        return torch.load(path / "state.pt", weights_only=True)


def load_checkpoint(path: Path, model, optimizer=None, scheduler=None) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with _checkpoint_file(path / "model.safetensors"):
            weights = load_file(str(path / "model.safetensors"))
    except SafetensorError as e:
        from ..errors import UserError

        raise UserError(f"{path / 'model.safetensors'}: damaged checkpoint ({e}); delete it to start afresh") from None
    _unwrap(model).load_state_dict(weights, strict=False)
    state = read_checkpoint_state(path)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    return state


# --------------------------------------------------------------------------------------------- optimizer
def make_optimizer(model, lr: float, weight_decay: float, fused: bool | None = None):
    """AdamW without weight decay on biases and LayerNorm weights (as BERT did). fused=True: PyTorch's fused
    AdamW (same update up to float rounding, one multi-tensor kernel instead of ~10 small ops per parameter
    tensor); None: fused where torch supports it for these parameters' device and dtype (CPU since torch 2.4,
    CUDA), else the plain loop. `optimizer.defaults["fused"]` says which was built."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        try:     # AdamW checks device and dtype support as it is built
            return torch.optim.AdamW(groups, lr=lr, fused=True)
        except (RuntimeError, ValueError):
            return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr, **({"fused": True} if fused else {}))


def linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------------------------- the loop
@dataclass
class TrainState:
    """Everything a run carries from one step to the next; what a checkpoint saves (with the weights,
    optimizer, scheduler and RNG) and a resumed run restores."""

    step: int = 0                         # optimizer steps done
    epoch: int = 0
    batch_pos: int = 0                    # next batch of this epoch
    best_metric: float | None = None
    best_step: int | None = None
    bad_evals: int = 0                    # evaluations since the best one (early stopping)
    history: list[dict] = field(default_factory=list)
    train_log: list[dict] = field(default_factory=list)
    tokens: int = 0
    examples: int = 0
    elapsed_before: float = 0.0           # seconds spent before a resume
    # not checkpointed: the current accumulation group and log window, and the in-memory best weights
    micro: int = 0
    running_loss: float = 0.0
    running_n: int = 0
    best_weights: dict | None = None
    best_written: int | None = None       # the best_step whose weights are in best.safetensors
    stopped_early: bool = False


@dataclass
class _Run:
    """What stays fixed during a run: the model (and its DDP wrapper), optimizer, schedule, where it runs."""

    model: Any
    ddp_model: Any
    optimizer: Any
    scheduler: Any
    config: TrainConfig
    device: torch.device
    rank: int
    world: int
    out_dir: Path | None
    steps_per_epoch: int
    total_steps: int
    loss_fn: Callable[[Any, dict], torch.Tensor] | None
    t0: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def elapsed(self, state: TrainState) -> float:
        return state.elapsed_before + time.perf_counter() - self.t0


def check_schedule(lr: float, warmup: float, epochs: float | None = None, max_steps: int | None = None) -> None:
    """The numbers every training run shares, refused before any work when not finite or out of range: an
    infinite --lr trained to NaN weights and exit 0, an infinite --epochs or --warmup never ended or never
    warmed up. Experiments call it first; `train` again for a caller that did not."""
    check_number("lr", lr, above=0)
    check_number("warmup", warmup, low=0)
    if epochs is not None:
        check_number("epochs", epochs, above=0)
    if max_steps is not None:
        check_number("max_steps", max_steps, low=1, integer=True)


def _setup(model, batches: Batches, config: TrainConfig, loss_fn) -> _Run:
    # config.precision was checked where it entered (the experiment); autocast refuses a name that is none
    check_schedule(config.lr, config.warmup, config.epochs, config.max_steps)
    device = pick_device(config.device)
    rank, world = init_distributed(device)
    out_dir = Path(config.out_dir) if config.out_dir else None
    if out_dir and rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed + rank)
    model.to(device)
    steps_per_epoch = math.ceil(len(batches(0, rank, world)) / config.grad_accum)
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
    warmup = int(config.warmup * total_steps) if config.warmup < 1 else int(config.warmup)
    optimizer = make_optimizer(model, config.lr, config.weight_decay, config.fused_optimizer)
    scheduler = linear_warmup_decay(optimizer, warmup, total_steps)
    return _Run(model, model, optimizer, scheduler, config, device, rank, world, out_dir, steps_per_epoch,
                total_steps, loss_fn)


def _resume(run: _Run) -> TrainState:
    """A fresh state, or the last checkpoint's (log.jsonl cut back to it: later steps will be logged again)."""
    state = TrainState()
    ckpt = find_checkpoint(run.out_dir) if run.config.resume and run.out_dir else None
    if ckpt:
        saved = load_checkpoint(ckpt, run.model, run.optimizer, run.scheduler)
        for name in ("step", "epoch", "batch_pos", "best_metric", "best_step", "bad_evals", "tokens", "examples"):
            setattr(state, name, saved[name])
        state.history, state.train_log = json.loads(saved["history"]), json.loads(saved["train_log"])
        state.elapsed_before = saved["elapsed"]
        _set_rng_state(saved["rng"])
        if run.is_main:
            truncate_jsonl(run.out_dir / "log.jsonl", state.step)
    # The best weights are kept in memory only when they will be restored at the end, and written to
    # best.safetensors at checkpoints (not at every improving evaluation), for a resumed run.
    best_file = run.out_dir / BEST_WEIGHTS if run.out_dir else None
    if run.config.restore_best and best_file and best_file.exists() and run.config.resume:
        from safetensors.torch import load_file

        state.best_weights = load_file(str(best_file))
        state.best_written = state.best_step
    return state


def loss_count(batch: dict) -> int:
    """How many items a micro-batch's loss averages over: `n_masked` when the batch carries it (the global
    masked count of a masked-LM batch), else the labelled tokens of per-token labels, else the rows."""
    if "n_masked" in batch:
        return int(batch["n_masked"])
    labels = batch.get("labels")
    if torch.is_tensor(labels) and labels.dim() == 2:
        return max(1, int((labels != -100).sum()))
    return int(batch["input_ids"].shape[0])


def _forward_backward(run: _Run, state: TrainState, batch: dict, sync: bool, weight: float = 1.0) -> None:
    """One micro-batch: loss under autocast, backward (gradients summed across the accumulation group).

    The loss a micro-batch returns is a mean over its own `loss_count`; `weight` = its count / the count of
    the whole accumulated batch, so the summed gradients are those of the mean over the whole accumulated
    (global) batch, as if it had been one batch."""
    no_sync = run.ddp_model.no_sync() if (run.world > 1 and not sync) else contextlib.nullcontext()
    with no_sync:
        with autocast(run.config.precision, run.device):
            loss = run.loss_fn(run.ddp_model, batch) if run.loss_fn is not None else run.ddp_model(**batch).loss
        value = float(loss.detach())
        if not math.isfinite(value):
            # Every later step would be NaN too: stop now, before NaN weights are exported and scored.
            raise UserError(f"training diverged: the loss is {value} at step {state.step + 1}; try a lower `lr` "
                            f"(this run: {run.config.lr:g})", ("lr",))
        # the one place the accumulated loss is normalised
        (loss * weight if weight != 1.0 else loss).backward()
    state.micro += 1
    state.running_loss += value
    state.running_n += 1
    state.tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    state.examples += batch["input_ids"].shape[0]


def _optimizer_step(run: _Run, state: TrainState) -> None:
    if run.config.clip:
        # with the fused optimizer, clipping also runs as multi-tensor (foreach) kernels
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip,
                                       foreach=True if run.optimizer.defaults.get("fused") else None)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state.micro = 0
    state.step += 1


def _log(run: _Run, state: TrainState, bar) -> None:
    elapsed = run.elapsed(state)
    entry = {"step": state.step, "loss": state.running_loss / state.running_n, "lr": run.scheduler.get_last_lr()[0],
             "tokens_per_s": state.tokens * run.world / max(elapsed, 1e-9), "elapsed": elapsed}
    state.train_log.append(entry)
    bar.set_postfix(loss=f"{entry['loss']:.4f}")
    if run.is_main and run.out_dir:
        with open(run.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, allow_nan=False) + "\n")   # strict JSON: a bare NaN breaks readers
    state.running_loss, state.running_n = 0.0, 0


def _evaluate(run: _Run, state: TrainState, evaluate, on_evaluate) -> bool:
    """Metrics (rank 0), hooks, best-weights bookkeeping; returns True when training should stop early."""
    config, model = run.config, run.model
    metrics: dict = {}
    if evaluate is not None and run.is_main:
        model.eval()
        with torch.inference_mode(), autocast(config.precision, run.device):
            metrics = dict(evaluate(model))
        model.train()
    for hook in on_evaluate:
        if run.is_main:
            extra = hook(model, state.step, metrics)
            model.train()
            if extra:
                metrics.update(extra)
    metrics = {"step": state.step, "epoch": round(state.step / max(1, run.steps_per_epoch), 4), **metrics}
    stop = False
    if run.is_main and config.metric in metrics and metrics[config.metric] is not None:
        value = float(metrics[config.metric])
        best = state.best_metric
        if best is None or (value > best if config.greater_is_better else value < best):
            state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
            if config.restore_best:
                state.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state.bad_evals += 1
            stop = config.patience is not None and state.bad_evals >= config.patience
    state.history.append(metrics)
    if run.world > 1:  # every rank must agree on stopping
        flag = torch.tensor([int(stop)], device=run.device)
        torch.distributed.broadcast(flag, 0)
        stop = bool(flag.item())
    return stop


def _checkpoint(run: _Run, state: TrainState) -> None:
    if not (run.is_main and run.out_dir):
        return
    if state.best_weights is not None and state.best_written != state.best_step:
        save_weights(run.out_dir / BEST_WEIGHTS, state.best_weights)   # only here, so it always matches the checkpoint
        state.best_written = state.best_step
    save_checkpoint(run.out_dir, run.model, run.optimizer, run.scheduler, {
        "step": state.step, "epoch": state.epoch, "batch_pos": state.batch_pos, "best_metric": state.best_metric,
        "best_step": state.best_step, "bad_evals": state.bad_evals, "history": json.dumps(state.history),
        "train_log": json.dumps(state.train_log), "tokens": state.tokens, "examples": state.examples,
        "elapsed": run.elapsed(state)})


def _after_step(run: _Run, state: TrainState, at_epoch_end: bool, evaluate, on_evaluate, bar) -> None:
    """Log, evaluate, checkpoint: whatever this optimizer step is due for."""
    config, step = run.config, state.step
    bar.update(1)
    if step % config.log_every == 0 or step == run.total_steps:
        _log(run, state, bar)
    if (config.eval_every and step % config.eval_every == 0) or (not config.eval_every and at_epoch_end) \
            or step == run.total_steps:
        state.stopped_early = _evaluate(run, state, evaluate, on_evaluate)
        if config.checkpoint_every is None:
            _checkpoint(run, state)   # at an epoch's end batch_pos == len: a resumed run moves to the next epoch
        if state.stopped_early:
            return
    if config.checkpoint_every and step % config.checkpoint_every == 0:
        _checkpoint(run, state)


def _loop(run: _Run, state: TrainState, batches: Batches, evaluate, on_evaluate, bar) -> None:
    """Epochs of accumulation groups until the last step or an early stop."""
    config = run.config
    while state.step < run.total_steps and not state.stopped_early:
        epoch_batches = batches(state.epoch, run.rank, run.world)
        while state.batch_pos < len(epoch_batches) and state.step < run.total_steps:
            # one accumulation group: grad_accum micro-batches (fewer at an epoch's end), one optimizer step
            end = min(state.batch_pos + config.grad_accum, len(epoch_batches))
            group = [epoch_batches[i] for i in range(state.batch_pos, end)]
            counts = [loss_count(b) for b in group] if len(group) > 1 else [1]
            for b, count in zip(group, counts):
                state.batch_pos += 1
                _forward_backward(run, state, {k: v.to(run.device) for k, v in b.items()},
                                  sync=state.batch_pos == end, weight=count / sum(counts))
            at_epoch_end = state.batch_pos == len(epoch_batches)
            _optimizer_step(run, state)
            _after_step(run, state, at_epoch_end, evaluate, on_evaluate, bar)
            if state.stopped_early:
                break
        if state.batch_pos >= len(epoch_batches):
            state.epoch, state.batch_pos = state.epoch + 1, 0


def train(model, batches: Batches, config: TrainConfig,
          evaluate: Callable[[Any], dict] | None = None,
          on_evaluate: Iterable[Callable[[Any, int, dict], dict | None]] = (),
          loss_fn: Callable[[Any, dict], torch.Tensor] | None = None) -> TrainResult:
    """Train `model` in place on `batches`; returns the history. See the module docstring.

    evaluate(model) -> dict of metrics (computed on rank 0 only; must contain `config.metric`).
    on_evaluate: extra hooks called as hook(model, step, metrics) at each evaluation; a returned dict is
    merged into the metrics (this is how e.g. alignment MRR is tracked during pretraining).
    loss_fn(model, batch) -> loss; default: `model(**batch).loss` (Hugging Face heads compute it from labels).
    """
    from tqdm.auto import tqdm

    run = _setup(model, batches, config, loss_fn)
    state = _resume(run)
    if run.world > 1:
        run.ddp_model = torch.nn.parallel.DistributedDataParallel(model)
    bar = tqdm(total=run.total_steps, initial=state.step, disable=not (config.progress and run.is_main),
               unit="step", dynamic_ncols=True, desc="train")
    model.train()
    run.t0 = time.perf_counter()
    try:
        _loop(run, state, batches, evaluate, on_evaluate, bar)
    finally:
        bar.close()     # also when training stops with an error: the message then starts a line of its own
    wall = run.elapsed(state)
    if config.restore_best and state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    return TrainResult(steps=state.step, epochs_done=state.step / max(1, run.steps_per_epoch),
                       best_step=state.best_step, best_metric=state.best_metric, history=state.history,
                       train_log=state.train_log, wall_time=wall, tokens=state.tokens * run.world,
                       examples=state.examples * run.world, stopped_early=state.stopped_early)
