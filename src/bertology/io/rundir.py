"""The run folder (`--out`): what identifies a run's settings, what a second invocation on the same folder
does, and how models are saved into it so that a reader or a crash never sees half of one.

The resume policy, the same for every command that trains:

| the folder holds                          | without `resume`  | with `resume`                                   |
|-------------------------------------------|-------------------|-------------------------------------------------|
| nothing of an earlier run                 | start             | start                                           |
| an earlier run (a checkpoint, a run.json) | refused: exit 2   | same settings: continue it (a finished run: its |
|                                           |                   | saved result); other settings: refused, naming  |
|                                           |                   | what changed                                    |

Settings are compared either field by field (`check_resume`: the message names each changed field) or by a
fingerprint of everything that shapes the result, data included (`finished_run` / `mark_finished`, for
experiments whose settings include their data splits and so are too big to list).

JSON goes through `storage.atomic_write_json`; models through `save_pretrained_atomically` and
`save_weights`; a folder written as a whole (a checkpoint) through `atomic_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import UserError
from .storage import atomic_write_json, atomic_write_text, remove_stale_tmp, replace_dir

CHECKPOINT = "checkpoint"              # the training engine's last complete checkpoint, a folder
BEST_WEIGHTS = "best.safetensors"      # the best weights so far, when the engine restores them at the end
RUN_SETTINGS = "run_settings.json"     # check_resume: the settings the run started with
FINISHED = "run.json"                  # mark_finished: {"fingerprint", "run": the run's result}
STARTED = "fingerprint.txt"            # finished_run: the fingerprint of a run that has started


# --------------------------------------------------------------------------------------------- fingerprint
def fingerprint(settings: Any) -> str:
    """16 hex digits identifying `settings` (any JSON-able value; dict order does not matter)."""
    blob = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- resume policy
def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The last complete checkpoint (a crash while one was swapped in leaves the previous one as .old)."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        p = Path(run_dir) / name
        if (p / "state.pt").exists() and (p / "model.safetensors").exists():
            return p
    return None


def refuse_unless_resuming(folder: str | Path, holds: str, resume: bool) -> None:
    """Without `resume`, an earlier run in `folder` (described by `holds`) is refused rather than silently
    continued or overwritten: resuming is opt-in in every command."""
    if not resume:
        raise UserError(f"{folder}: holds {holds}; pass `resume` to continue it, or choose another `out`",
                        fields=("resume", "out"))


# Settings renamed since checkpoints were first written (issue 24: one name per setting): old key -> new.
RENAMED_SETTINGS = {"seq_len": "max_length", "max_len": "max_length"}


def check_resume(run_dir: str | Path, settings: dict[str, Any], resume: bool) -> None:
    """Called before any work. `settings` are the fields that shape the trained model. A checkpoint continued
    with another data set, length or learning rate would export the old run's model under the new settings
    (issue 14.2), so a resume with any of them changed is refused, naming those fields; the first run's are
    kept in RUN_DIR/run_settings.json. A fresh start records the new settings."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_SETTINGS
    now = json.loads(json.dumps(settings, default=str))      # as it reads back from the file
    started = find_checkpoint(run_dir) is not None
    if started:
        refuse_unless_resuming(run_dir, "a checkpoint of an earlier run", resume)
    if started and path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        # a checkpoint from before a setting's rename still has its length checked under today's name
        before = {RENAMED_SETTINGS.get(k, k): v for k, v in before.items()}
        changed = [k for k in now if k in before and before[k] != now[k]]
        if changed:
            what = ", ".join(f"`{k}` {before[k]!r} (now {now[k]!r})" for k in changed)
            raise UserError(f"{run_dir}: its checkpoint was trained with other settings: {what}; resume with "
                            f"the same ones, or start afresh in another `out`", fields=(*changed, "out"))
        return
    atomic_write_json(path, now)


def finished_run(run_dir: str | Path, fp: str) -> Any | None:
    """The saved result (`mark_finished`'s `run`) of a finished run with fingerprint `fp`, else None after
    stamping `fp` on the folder, so that its checkpoint can only ever be resumed under the same settings. A
    finished or interrupted run with another fingerprint is refused."""
    run_dir = Path(run_dir)
    done_file = run_dir / FINISHED
    if done_file.exists():
        prev = json.loads(done_file.read_text(encoding="utf-8"))
        if prev.get("fingerprint") != fp:
            raise UserError(f"{done_file}: a finished run with different settings, data or mapping; "
                            f"use another `out` (or delete {run_dir})", fields=('out',))
        return prev["run"]
    stamp = run_dir / STARTED
    if stamp.exists() and stamp.read_text().strip() != fp:
        raise UserError(f"{run_dir}: an interrupted run with different settings, data or mapping; "
                        f"use another `out` (or delete {run_dir})", fields=('out',))
    atomic_write_text(stamp, fp + "\n")
    return None


def mark_finished(run_dir: str | Path, fp: str, run: Any) -> None:
    """Record the run's result under its fingerprint, then drop its checkpoints (big, and no longer needed)."""
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / FINISHED, {"fingerprint": fp, "run": run})
    for name in (CHECKPOINT, CHECKPOINT + ".old", CHECKPOINT + ".tmp"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    (run_dir / BEST_WEIGHTS).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- atomic saves
def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """`write(temporary path)` then rename it over `path`: for writers that take a file name (safetensors,
    torch.save) and whose output may be too big to hold as bytes. On failure no file is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_weights(path: str | Path, weights: dict) -> Path:
    """A state dict as safetensors, atomically. Tensors that share memory (tied embeddings and decoder), which
    safetensors refuses, are stored as clones."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    unshared = {}
    for name, tensor in weights.items():
        unshared[name] = tensor.clone() if tensor.data_ptr() in seen else tensor
        seen.add(tensor.data_ptr())
    return atomic_write_with(path, lambda tmp: save_file(unshared, str(tmp)))


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; when the block ends without an error it replaces
    `target` as a whole (storage.replace_dir: a crash leaves the old or the new one, never a mix); on an error
    it is removed and `target` is untouched."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


def save_pretrained_atomically(target: str | Path, *parts) -> Path:
    """`part.save_pretrained` for each part (a model, its tokenizer, a config) into a temporary folder, then
    every file moved into `target` with one atomic rename each: config first, weights last, so a reader that
    sees the new weights also sees the config they belong to, and `target` never disappears (a server or an
    evaluation may load it while training goes on). On an error `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        for part in parts:
            part.save_pretrained(tmp)
        target.mkdir(parents=True, exist_ok=True)
        for p in sorted(tmp.iterdir(), key=lambda p: (p.suffix == ".safetensors", p.name)):
            os.replace(p, target / p.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
