"""The training engine: it learns, bucketing pads little, and an interrupted run resumes to the same weights."""

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bertology.core.engine import ExampleBatches, TrainConfig, length_batches, pad_batch, train


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
    try:
        train(m2, ExampleBatches(ex, 4, seed=3), TrainConfig(out_dir=out, **cfg), evaluate=flaky)
    except KeyboardInterrupt:
        pass
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
    real = engine._write_best
    monkeypatch.setattr(engine, "_write_best", lambda d, w: (writes.append(d), real(d, w)))
    cfg = dict(lr=3e-3, max_steps=12, seed=3, metric="accuracy", greater_is_better=True, progress=False,
               eval_every=1, checkpoint_every=6)
    evaluate = lambda m: _accuracy(m, ex)  # noqa: E731
    plain, fused = _model(tiny_model), _model(tiny_model)
    res = train(plain, ExampleBatches(ex, 4, seed=3), TrainConfig(out_dir=tmp_path / "a", **cfg), evaluate=evaluate)
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
