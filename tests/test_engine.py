"""The training engine: it learns, bucketing pads little, and an interrupted run resumes to the same weights."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bertology.core.engine import ExampleBatches, TrainConfig, length_batches, make_optimizer, pad_batch, train


def _task(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    texts = [("the apple is sweet and red", 0), ("i ate a green apple pie", 0), ("apple juice is tasty", 0),
             ("the company sold new phone", 1), ("apple stock price fell today", 1), ("the iphone launch", 1)] * 6
    ex = [dict(tok(t), labels=y) for t, y in texts]
    return tok, ex


def _model(tiny_model):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)


def _accuracy(model, ex):
    batch = pad_batch([{k: v for k, v in e.items() if k != "labels"} for e in ex])
    pred = model(**batch).logits.argmax(-1)
    return {"accuracy": float((pred == torch.tensor([e["labels"] for e in ex])).float().mean())}


def test_length_batches_cover_everything_once():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    for shuffle in (False, True):
        b = length_batches(lengths, 3, shuffle=shuffle, seed=1)
        assert sorted(i for g in b for i in g) == list(range(10))
    assert length_batches(lengths, 3, shuffle=False)[0] == [9, 2, 6]  # longest first
    # a budget of padded tokens, rows x the batch's longest <= 20: lengths 10+9, 8+7, 6+5+4, 3+2+1
    assert length_batches(lengths, 3, shuffle=False, max_tokens=20) == [[9, 2], [6, 4], [8, 0, 7], [3, 5, 1]]


def test_pad_batch_pads_dynamically():
    b = pad_batch([{"input_ids": [2, 5, 3], "labels": 1}, {"input_ids": [2, 3], "labels": 0}])
    assert b["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["labels"].tolist() == [1, 0]


def test_train_learns_and_resume_is_exact(tiny_model, tmp_path):
    tok, ex = _task(tiny_model)
    cfg = dict(lr=3e-3, epochs=8, seed=3, metric="accuracy", greater_is_better=True, progress=False,
               restore_best=False)
    full = _model(tiny_model)
    res = train(full, ExampleBatches(ex, 4, seed=3), TrainConfig(**cfg), evaluate=lambda m: _accuracy(m, ex))
    assert res.steps == 72 and res.best_metric == 1.0

    # Interrupt the run at its third evaluation (after the epoch-2 checkpoint), then resume it.
    calls = {"n": 0}

    def flaky(m):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _accuracy(m, ex)

    out = tmp_path / "run"
    m2 = _model(tiny_model)
    with pytest.raises(KeyboardInterrupt):
        train(m2, ExampleBatches(ex, 4, seed=3), TrainConfig(out_dir=out, **cfg), evaluate=flaky)
    assert calls["n"] == 3
    # it died at step 27 (third epoch's end), the checkpoint is that of the second evaluation (step 18)
    assert torch.load(out / "checkpoint" / "state.pt", weights_only=True)["step"] == 18
    m3 = _model(tiny_model)
    res3 = train(m3, ExampleBatches(ex, 4, seed=3), TrainConfig(out_dir=out, resume=True, **cfg),
                 evaluate=lambda m: _accuracy(m, ex))
    assert res3.steps == 72
    for (k, a), b in zip(full.state_dict().items(), m3.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert [h["accuracy"] for h in res3.history] == [h["accuracy"] for h in res.history]


def test_best_weights_written_at_checkpoints_only_and_fused_adamw(tiny_model, tmp_path, monkeypatch):
    from bertology.core import engine

    tok, ex = _task(tiny_model)
    writes = []
    real = engine.save_weights     # the checkpoint's weights go through it too: count best.safetensors only
    monkeypatch.setattr(engine, "save_weights",
                        lambda p, w: (p.name == "best.safetensors" and writes.append(p), real(p, w))[1])
    cfg = dict(lr=3e-3, max_steps=12, seed=3, metric="accuracy", greater_is_better=True, progress=False,
               eval_every=1, checkpoint_every=6)
    evaluate = lambda m: _accuracy(m, ex)  # noqa: E731
    plain, fused = _model(tiny_model), _model(tiny_model)
    res = train(plain, ExampleBatches(ex, 4, seed=3), TrainConfig(out_dir=tmp_path / "a", fused_optimizer=False, **cfg),
                evaluate=evaluate)
    # 12 evaluations, at most 2 writes of best.safetensors (one per checkpoint), and restore_best still works
    assert len(res.history) == 12 and 1 <= len(writes) <= 2 and (tmp_path / "a" / "best.safetensors").exists()
    # fused AdamW: the same update up to float rounding
    train(fused, ExampleBatches(ex, 4, seed=3), TrainConfig(fused_optimizer=True, **cfg), evaluate=evaluate)
    for (k, a), b in zip(plain.state_dict().items(), fused.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), k
    # restore_best=False (pretraining): best weights are neither kept nor written
    writes.clear()
    train(_model(tiny_model), ExampleBatches(ex, 4, seed=3),
          TrainConfig(out_dir=tmp_path / "b", restore_best=False, **cfg), evaluate=evaluate)
    assert writes == [] and not (tmp_path / "b" / "best.safetensors").exists()


# --------------------------------------------------------------------------------------------- grad accumulation
class _Fixed:
    """`Batches` that are the same fixed list of micro-batches every epoch."""

    def __init__(self, batches):
        self.batches = batches

    def __call__(self, epoch, rank=0, world=1):
        return self.batches


def _first_grads(monkeypatch, model, batches, loss_fn=None, **cfg):
    """The gradients the engine hands to its first optimizer step."""
    from bertology.core import engine

    grads, real = {}, engine._optimizer_step

    def capture(run, state):
        if not grads:
            grads.update({n: p.grad.detach().clone() for n, p in run.model.named_parameters() if p.grad is not None})
        real(run, state)

    monkeypatch.setattr(engine, "_optimizer_step", capture)
    train(model, _Fixed(batches), TrainConfig(max_steps=1, progress=False, clip=0, **cfg), loss_fn=loss_fn)
    return grads


def _mlm_micro_batches(vocab, labelled=(3, 9), rows=2, width=12, seed=0):
    """Micro-batches of equal width whose masked counts differ (so a per-micro-batch mean is visibly wrong)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in labelled:
        ids = torch.randint(5, vocab, (rows, width), generator=g)
        labels = torch.full_like(ids, -100)
        pos = torch.randperm(rows * width, generator=g)[:n]
        labels.view(-1)[pos] = torch.randint(5, vocab, (n,), generator=g)
        out.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})
    return out


def _merged(micro):
    return {k: torch.cat([b[k] for b in micro]) if micro[0][k].dim() else sum(b[k] for b in micro)
            for k in micro[0]}


def _assert_same_grads(a, b):
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-7), (k, float((a[k] - b[k]).abs().max()))


def test_grad_accum_normalises_by_the_whole_accumulated_batch(tiny_model, monkeypatch):
    """--grad-accum 2 gives the gradient of one batch holding both micro-batches: each micro-batch's loss is
    weighted by its share of the labelled tokens of the whole group (not averaged as two equal means)."""
    from transformers import AutoModelForMaskedLM

    def model():
        torch.manual_seed(0)
        return AutoModelForMaskedLM.from_pretrained(tiny_model, hidden_dropout_prob=0.0,
                                                    attention_probs_dropout_prob=0.0)

    micro = _mlm_micro_batches(model().config.vocab_size)
    assert [int((b["labels"] != -100).sum()) for b in micro] == [3, 9]
    accumulated = _first_grads(monkeypatch, model(), micro, grad_accum=2)
    one = _first_grads(monkeypatch, model(), [_merged(micro)], grad_accum=1)
    _assert_same_grads(accumulated, one)


def test_grad_accum_with_the_pretraining_objective(tiny_model, monkeypatch):
    """The masked-LM objective normalises by `n_masked`: the engine's weights make the accumulated gradient
    that of the merged batch (n_masked = the sum) too."""
    from bertology.experiments.pretrain import MaskedLMObjective, make_mlm, model_config

    vocab = 120

    def objective():
        torch.manual_seed(0)
        return MaskedLMObjective(make_mlm(model_config("tiny", None, vocab, 16, 0.0)))

    micro = _mlm_micro_batches(vocab, labelled=(2, 11), width=16)
    for b in micro:
        b["n_masked"] = (b["labels"] != -100).sum()
    loss_fn = lambda m, b: m(**b)[0]  # noqa: E731
    accumulated = _first_grads(monkeypatch, objective(), micro, loss_fn=loss_fn, grad_accum=2)
    one = _first_grads(monkeypatch, objective(), [_merged(micro)], loss_fn=loss_fn, grad_accum=1)
    _assert_same_grads(accumulated, one)


def test_early_stopping_after_patience_evaluations_without_improvement(tiny_model):
    """patience=2: the best is the first evaluation, the two after it are worse, training stops at the third."""
    tok, ex = _task(tiny_model)
    scores = iter([0.9, 0.5, 0.4, 0.95, 0.99, 1.0])
    res = train(_model(tiny_model), ExampleBatches(ex, 4, seed=3),
                TrainConfig(max_steps=12, eval_every=2, patience=2, metric="accuracy", greater_is_better=True,
                            progress=False, restore_best=False), evaluate=lambda m: {"accuracy": next(scores)})
    assert res.stopped_early and res.steps == 6 and len(res.history) == 3
    assert (res.best_step, res.best_metric) == (2, 0.9)
    # without patience the same run goes on to max_steps
    scores = iter([0.9, 0.5, 0.4, 0.95, 0.99, 1.0])
    res = train(_model(tiny_model), ExampleBatches(ex, 4, seed=3),
                TrainConfig(max_steps=12, eval_every=2, metric="accuracy", greater_is_better=True, progress=False,
                            restore_best=False), evaluate=lambda m: {"accuracy": next(scores)})
    assert not res.stopped_early and res.steps == 12 and res.best_step == 12


def test_fine_tuning_uses_fused_adamw_where_torch_supports_it(tiny_model, monkeypatch):
    """The default (fused_optimizer=None) builds torch's fused AdamW on CPU (torch >= 2.4: the fine-tuning
    experiments get it without asking), the plain loop when asked, and falls back to it where torch refuses."""
    assert make_optimizer(_model(tiny_model), 1e-3, 0.01).defaults["fused"] is True
    assert not make_optimizer(_model(tiny_model), 1e-3, 0.01, fused=False).defaults["fused"]
    assert TrainConfig().fused_optimizer is None
    real = torch.optim.AdamW

    def no_fused(params, lr, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    assert not make_optimizer(_model(tiny_model), 1e-3, 0.01).defaults["fused"]
