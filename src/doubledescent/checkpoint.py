"""Checkpoints of a training group, so a killed job resumes where it stopped.

A checkpoint holds everything the next step depends on (parameters, batchnorm statistics,
optimizer state, the step count of the schedule and the budget, every run's random streams,
the runs that stopped at zero train error)
plus the rows evaluated so far, so a resumed job ends with exactly the numbers of an
uninterrupted one. It is written atomically and tagged with the group spec it belongs to;
a checkpoint of another spec is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from doubledescent.config import plain_spec
from doubledescent.errors import UserError
from doubledescent.io import atomic_path
from doubledescent.specs import GroupSpec

# The group's random streams that advance during training (init is used up at the start).
GENERATORS = ("order_gens", "dropout_gens", "augment_gens")


@dataclass
class Progress:
    """How far a group got (its step count is the group's): its rows, the time spent so far,
    and the current epoch's minibatch order where a save falls inside an epoch (steps
    budgets), so that the rest of that epoch takes the same batches."""

    rows: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    order: torch.Tensor | None = None


# Bumped when the saved state changes shape (2: doubledescent.optim's state, not torch.optim's;
# 3: the step count as position, the order within an epoch, frozen runs; 4: the MLP's
# parameters as layers, `linears.<i>.weight`, not `weights.<i>`; 5: the CPU's dropout streams
# as numpy's PCG64 states, not torch generators'), so that an older checkpoint is ignored (its
# group starts afresh), not misread.
FORMAT = 5


def _tag(spec: GroupSpec) -> str:
    return json.dumps({"format": FORMAT, "spec": plain_spec(spec)}, sort_keys=True)


def save(path: str | Path, spec: GroupSpec, group, progress: Progress) -> None:
    state = {
        "spec": _tag(spec),
        "model": group.model.state_dict(),
        "optimizer": group.optimizer.state_dict(),
        **{name: [g.get_state() for g in getattr(group, name)] for name in GENERATORS},
        "diverged_epoch": group.diverged_epoch,
        "step": group.step,
        "frozen": group.frozen,
        "progress": vars(progress),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    _pause_if_a_test_asks(Path(path))


# Test-only: the folder where a test asks a training job to pause after a checkpoint, so it
# can stop the job at a known point on a machine of any speed (tests/test_interrupt.py).
PAUSE_ENV = "DOUBLEDESCENT_TEST_PAUSE_AFTER_CHECKPOINT"


def _pause_if_a_test_asks(path: Path) -> None:
    """With PAUSE_ENV naming a folder that holds `<checkpoint file name>.pause`: write
    `<name>.paused` there once the checkpoint is saved, then wait until the test removes
    the `.pause` file (or stops the job)."""
    folder = os.environ.get(PAUSE_ENV)
    request = Path(folder or ".") / f"{path.name}.pause"
    if not folder or not request.exists():
        return
    request.with_suffix(".paused").touch()
    while request.exists():
        time.sleep(0.01)


def _load(path: Path, spec: GroupSpec) -> dict | None:
    """The saved state at `path` if there is one of this spec; a damaged file is an error."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 (zip/pickle errors mean the same to a user)
        raise UserError(f"checkpoint {path} is corrupt ({e}); delete it and rerun") from None
    return state if state["spec"] == _tag(spec) else None


def rows(path: str | Path, spec: GroupSpec) -> list[dict]:
    """The rows evaluated so far by the job of `spec` that checkpoints to `path`."""
    state = _load(Path(path), spec)
    return state["progress"]["rows"] if state else []


def resume(path: str | Path, spec: GroupSpec, group) -> Progress | None:
    """Restore `group` from the checkpoint at `path` if it is this spec's; else None."""
    state = _load(Path(path), spec)
    if state is None:
        return None
    group.model.load_state_dict(state["model"])
    group.optimizer.load_state_dict(state["optimizer"])
    for name in GENERATORS:
        for g, s in zip(getattr(group, name), state[name]):
            g.set_state(s)
    group.diverged_epoch = state["diverged_epoch"]
    group.step = state["step"]
    group.frozen = state["frozen"]
    progress = Progress(**state["progress"])
    if progress.order is not None:  # loaded to the CPU; the batches are gathered on the device
        progress.order = progress.order.to(next(group.model.parameters()).device)
    return progress
