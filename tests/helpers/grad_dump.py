"""Test helper: run the `bertology` command with the engine's first optimizer step saving the gradients it is
given (rank r writes $GRAD_DUMP.r.pt). Run it with plain python or under torchrun, like the command itself."""

import os
import sys

import torch

from bertology.cli import main
from bertology.core import engine

_real_step = engine._optimizer_step


def _dump_then_step(run, state):
    if state.step == 0:
        grads = {n: p.grad.detach().clone() for n, p in run.model.named_parameters() if p.grad is not None}
        torch.save(grads, f"{os.environ['GRAD_DUMP']}.{run.rank}.pt")
    _real_step(run, state)


engine._optimizer_step = _dump_then_step
sys.exit(main(sys.argv[1:]))
