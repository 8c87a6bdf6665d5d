"""Weight reuse between consecutive widths (Belkin et al. 2019): a network below the
interpolation threshold starts from the trained next-smaller network.

Belkin et al. (2019, PNAS), the protocol of their Fig. 3 as their text describes it (the
authors published no code; the paper itself could not be read from here, so these facts
come from its summary in issue #12 and agree with public reproductions, e.g.
Dave69178/double_descent_reproduction): each network below the threshold is initialized
with the final weights of the previously trained smaller one, and its remaining weights are
drawn from a normal distribution with mean 0 and variance 0.01; networks above the
threshold start from Glorot-uniform initializations.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from doubledescent.config import Run
from doubledescent.errors import DataError
from doubledescent.io import atomic_path

NEW_UNIT_STD = 0.1  # variance 0.01, as the paper says
# The MLP's tensors whose new units are drawn small (its linear layers' weights and biases);
# batchnorm's keep their fresh values (scale 1, shift 0, statistics 0 and 1).
DRAWN = ("linears.",)


def _key(run: Run) -> tuple[str, int]:
    """What a run is across widths: its variant and seed."""
    return run.regularizer, run.seed


def save(path: str | Path, model: nn.Module, runs: list[Run]) -> None:
    """A group's final weights, for the next width to start from (atomically)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"runs": [_key(r) for r in runs], "state": state}, tmp)


def load(path: str | Path) -> dict:
    if path is None or not Path(path).exists():
        raise DataError(f"weights to start from not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


@torch.no_grad()
def grow(model: nn.Module, runs: list[Run], saved: dict, gens: list[torch.Generator]) -> None:
    """Start each run of `model` from the same run's saved smaller network: the old units'
    values in the leading block of every tensor, the new units' weights and biases drawn
    from N(0, NEW_UNIT_STD^2) with the run's own generator."""
    index = {tuple(key): j for j, key in enumerate(saved["runs"])}
    missing = sorted(set(model.state_dict()) - set(saved["state"]))
    if missing:
        raise DataError(
            f"the weights to start from lack {missing[0]} and {len(missing) - 1} more tensors "
            "(saved by an older layout of the model?): delete them and retrain that width"
        )
    for name, tensor in model.state_dict().items():
        old = saved["state"][name]
        block = tuple(slice(0, size) for size in old.shape[1:])
        for i, run in enumerate(runs):
            j = index[_key(run)]
            if name.startswith(DRAWN):
                drawn = torch.randn(tensor.shape[1:], generator=gens[i], dtype=torch.float64)
                tensor[i] = drawn * NEW_UNIT_STD
            tensor[i][block] = old[j]
