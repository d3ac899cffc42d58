"""io.rundir: atomic saves leave the old file or the new one, never a part; the resume policy's decisions; the
fingerprint; and io.cjk, the one CJK definition."""

from __future__ import annotations

import json

import pytest
import torch

from bertology.errors import UserError
from bertology.io import rundir
from bertology.io.cjk import has_cjk, is_cjk


# --------------------------------------------------------------------------------------------- atomic saves
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")

    def half_then_crash(path):
        path.write_bytes(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        rundir.atomic_write_with(target, half_then_crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]


def test_save_weights_round_trips_and_stores_shared_tensors(tmp_path):
    from safetensors.torch import load_file

    emb = torch.randn(5, 3)
    path = rundir.save_weights(tmp_path / "m.safetensors", {"embed": emb, "decoder": emb, "bias": torch.zeros(5)})
    back = load_file(str(path))
    assert torch.equal(back["embed"], emb) and torch.equal(back["decoder"], emb) and set(back) == {
        "embed", "decoder", "bias"}


def test_atomic_dir_replaces_the_folder_as_a_whole_or_not_at_all(tmp_path):
    target = tmp_path / "checkpoint"
    with rundir.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with rundir.atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("killed half-way")
    assert (target / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


class _Part:
    def __init__(self, files: dict[str, str], fail: bool = False):
        self.files, self.fail = files, fail

    def save_pretrained(self, folder):
        for name, text in self.files.items():
            (folder / name).write_text(text)
        if self.fail:
            raise RuntimeError("tokenizer failed")


def test_save_pretrained_atomically_moves_every_part_or_none(tmp_path):
    target = tmp_path / "model"
    rundir.save_pretrained_atomically(target, _Part({"config.json": "1", "model.safetensors": "w1"}),
                                      _Part({"vocab.txt": "v1"}))
    assert {p.name: p.read_text() for p in target.iterdir()} == {
        "config.json": "1", "model.safetensors": "w1", "vocab.txt": "v1"}
    with pytest.raises(RuntimeError):
        rundir.save_pretrained_atomically(target, _Part({"config.json": "2", "model.safetensors": "w2"}),
                                          _Part({"vocab.txt": "v2"}, fail=True))
    assert {p.name: p.read_text() for p in target.iterdir()} == {
        "config.json": "1", "model.safetensors": "w1", "vocab.txt": "v1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# --------------------------------------------------------------------------------------------- resume policy
def _checkpoint(run_dir):
    ckpt = run_dir / rundir.CHECKPOINT
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"")
    (ckpt / "model.safetensors").write_bytes(b"")


def test_find_checkpoint_needs_both_files_and_falls_back_to_old(tmp_path):
    assert rundir.find_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.pt").write_bytes(b"")
    assert rundir.find_checkpoint(tmp_path) is None            # weights missing: not complete
    old = tmp_path / "checkpoint.old"
    old.mkdir()
    (old / "state.pt").write_bytes(b"")
    (old / "model.safetensors").write_bytes(b"")
    assert rundir.find_checkpoint(tmp_path) == old


def test_check_resume_decisions(tmp_path):
    run = tmp_path / "run"
    rundir.check_resume(run, {"lr": 0.1, "data": "a"}, resume=False)          # nothing there: start, record
    assert json.loads((run / rundir.RUN_SETTINGS).read_text()) == {"lr": 0.1, "data": "a"}
    _checkpoint(run)
    with pytest.raises(UserError, match="pass `resume`") as e:                 # an earlier run, no resume
        rundir.check_resume(run, {"lr": 0.1, "data": "a"}, resume=False)
    assert e.value.fields == ("resume", "out")
    with pytest.raises(UserError, match=r"`lr` 0.1 \(now 0.2\)") as e:         # resume, other settings
        rundir.check_resume(run, {"lr": 0.2, "data": "a"}, resume=True)
    assert e.value.fields == ("lr", "out")
    rundir.check_resume(run, {"lr": 0.1, "data": "a", "new_field": 1}, resume=True)   # same: continue
    assert "new_field" not in json.loads((run / rundir.RUN_SETTINGS).read_text())     # the first run's kept


def test_resume_without_an_earlier_run_starts_afresh(tmp_path):
    rundir.check_resume(tmp_path / "r", {"lr": 0.1}, resume=True)
    assert (tmp_path / "r" / rundir.RUN_SETTINGS).exists()


def test_finished_runs_are_reused_only_under_their_fingerprint(tmp_path):
    run = tmp_path / "run"
    fp = rundir.fingerprint({"s": {"lr": 0.1}, "m": {"A": "x"}})
    assert rundir.finished_run(run, fp) is None                       # fresh: stamped
    with pytest.raises(UserError, match="interrupted run with different settings"):
        rundir.finished_run(run, rundir.fingerprint({"s": {"lr": 0.2}}))
    _checkpoint(run)
    (run / rundir.BEST_WEIGHTS).write_bytes(b"")
    rundir.mark_finished(run, fp, {"accuracy": 0.9})
    assert rundir.find_checkpoint(run) is None and not (run / rundir.BEST_WEIGHTS).exists()
    assert rundir.finished_run(run, fp) == {"accuracy": 0.9}
    with pytest.raises(UserError, match="finished run with different settings"):
        rundir.finished_run(run, "0" * 16)


def test_refuse_unless_resuming():
    rundir.refuse_unless_resuming("out", "the runs of an earlier experiment", resume=True)
    with pytest.raises(UserError, match="out: holds the runs of an earlier experiment; pass `resume`"):
        rundir.refuse_unless_resuming("out", "the runs of an earlier experiment", resume=False)


def test_fingerprint_ignores_key_order_and_sees_every_value():
    assert rundir.fingerprint({"a": 1, "b": [1, 2]}) == rundir.fingerprint({"b": [1, 2], "a": 1})
    assert rundir.fingerprint({"a": 1, "b": [1, 2]}) != rundir.fingerprint({"a": 1, "b": [2, 1]})
    assert len(rundir.fingerprint({})) == 16


# --------------------------------------------------------------------------------------------- io.cjk
def test_cjk_is_the_basic_plane_ideographs():
    assert all(is_cjk(c) for c in "中文蘋果㐀豈")               # unified, Extension A, compatibility
    assert not any(is_cjk(c) for c in "aé1。，かカ한 \U00020000")    # punctuation, kana, hangul, Latin, Ext. B
    assert has_cjk("apple 蘋果") and not has_cjk("apple, pomme") and not is_cjk("中文")
