"""Dropout's training side (imports torch; regularizers.dropout loads it inside `setup`).

Each dropping run draws its masks from its own stream, in the order the model asks for
them, so a run's masks do not depend on its group. A model takes them in one of two ways,
with the same numbers:

- `masks(shape)`: (R, *shape) inverted-dropout masks to multiply into stacked activations
  (ones for the runs without dropout), for models trained through autograd;
- `masks.apply_(h)` in place on stacked activations (R, B, *S) and `masks.scale_grad_(g)`
  for a hand-written backward (models.mlp); in a group, whose dropping runs are one slice,
  these touch only that slice: with a third of the runs dropping, a third of the passes.

A run's stream (train.mask_stream picks it for the device) keeps each unit with probability
1 - rate. `stream.draw_(out, rate)` fills `out` with values v whose `v >= rate` are the keep
indicators (uniforms, or the indicators themselves), so that one comparison serves a whole
stack of runs; `stream.take(n, rate)` gives the next n indicators.
"""

from __future__ import annotations

import numpy as np
import torch

from doubledescent import streams
from doubledescent.regularizers.base import one_slice


class BitStream:
    """A run's mask stream on the CPU: numpy's PCG64 on the run's `dropout` SeedSequence,
    read as a sequence of 32-bit draws (each 64-bit word's low half, then its high half),
    consumed in order whatever the sizes asked for. A unit is kept when its draw is at
    least round(rate * 2**32), so the rate is exact to 2**-33 (float32 uniforms: 2**-24).

    Why not torch's CPU generator: its mt19937 uniforms cost ~4.8 ns each, ~10% of a
    width-300 step with a third of the runs dropping; these cost ~1.5 ns. Why blocks:
    numpy's per-call cost (~10 us) would outweigh that at small widths, so draws and their
    indicators are made a block at a time, 8 masks' worth (so that few masks straddle two
    blocks) within [BLOCK, CAP], and a mask is a view of the block where it lies in one."""

    BLOCK, CAP = 1 << 15, 1 << 21  # draws per block: 128 KB to 8 MB of indicators
    # `take` is a view of indicators already made: a run's mask costs no op to draw.
    takes_views = True

    def __init__(self, seed: int):
        self.bits = np.random.PCG64(streams.seed_sequence(seed, "dropout"))
        # The generator's state before the current block (at first an empty one), the block's
        # size and the draws used from it: what a checkpoint needs to redraw it.
        self.start, self.size, self.pos = self.bits.state, 0, 0
        self.rate = None  # a stream serves one run, whose rate is fixed

    def take(self, n: int, rate: float) -> torch.Tensor:
        """The next `n` indicators (float32, 1-D; read-only: a view of the block)."""
        if self.rate not in (None, rate):
            raise ValueError(f"a mask stream serves one rate: {self.rate}, now {rate}")
        self.rate, pieces = rate, []
        while n > 0:
            if self.pos == self.size:
                self.draw_block(max(self.BLOCK, min(8 * n, self.CAP)))
            k = min(n, self.size - self.pos)
            pieces.append(self.kept[self.pos : self.pos + k])
            self.pos, n = self.pos + k, n - k
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def draw_(self, out: torch.Tensor, rate: float) -> None:
        """Fill `out` (float32, any strides) with the next out.numel() indicators (1.0 kept,
        0.0 dropped: `>= rate` leaves them as they are), in row-major order of its shape."""
        out.copy_(self.take(out.numel(), rate).view(out.shape))

    def draw_block(self, size: int) -> None:
        """Make the next `size` draws' indicators the current block (benchmarks time it)."""
        self.start, self.size = self.bits.state, size + size % 2
        # The words' halves, low first on a little-endian machine (every one torch ships for).
        words = self.bits.random_raw(self.size // 2).view(np.uint32)
        threshold = np.uint32(min(round(self.rate * 2**32), 2**32 - 1))
        self.kept = torch.empty(self.size)
        np.greater_equal(words, threshold, out=self.kept.numpy(), casting="unsafe")
        self.pos = 0

    def get_state(self) -> dict:
        return {"start": self.start, "size": self.size, "pos": self.pos, "rate": self.rate}

    def set_state(self, state: dict) -> None:
        self.bits.state, self.rate = state["start"], state["rate"]
        self.start, self.size, self.pos = state["start"], 0, 0
        if state["size"]:  # a block was drawn: the same again
            self.draw_block(state["size"])
            self.pos = state["pos"]


class TorchStream:
    """A run's mask stream on a GPU: uniforms of a torch generator on the device (drawn
    there, no host work in the step), kept where at least the rate."""

    # Each `take` is ops of its own: a stack's runs draw into one buffer instead.
    takes_views = False

    def __init__(self, gen: torch.Generator):
        self.gen = gen

    def take(self, n: int, rate: float) -> torch.Tensor:
        return torch.empty(n, device=self.gen.device).uniform_(generator=self.gen).ge_(rate)

    def draw_(self, out: torch.Tensor, rate: float) -> None:
        out.uniform_(generator=self.gen)

    def get_state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state)


class DropoutMasks:
    def __init__(self, rates: list[float], gens: list, device, dtype):
        self.gens, self.rates, self.dtype = gens, rates, dtype
        # Draws are float32 whatever the model's dtype, so float64 tests draw the same masks.
        self.rate = torch.tensor(rates, device=device)
        self.scale = 1 / torch.tensor([1 - p for p in rates], dtype=dtype, device=device)
        self.dropping = [i for i, p in enumerate(rates) if p > 0]
        # The dropping runs where they are one slice, with their rates and scales shaped
        # to broadcast over their (runs, B, features) activations.
        self.span = one_slice(rates)
        if self.span is not None:
            self.span_rate = self.rate[self.span].view(-1, 1, 1)
            self.span_scale = self.scale[self.span].view(-1, 1, 1)
        self.device = device
        self.padded: dict[tuple, tuple] = {}  # a padded model's draws and run slices

    def __call__(self, shape, widths: list[int] | None = None) -> torch.Tensor:
        """(R, *shape) masks; with `widths`, for runs zero-padded to shape[-1] from them."""
        per_run = (-1, *[1] * len(shape))
        if widths is not None:  # out of place: the buffer keeps its ones for the next call
            u = self.padded_draws(shape, widths).ge(self.rate.view(per_run))
            return u.to(self.dtype).mul_(self.scale.view(per_run))
        # Drawn in place per dropping run, then one comparison for all runs; a run without
        # dropout keeps u = 1 >= 0 and scale 1. In place: the comparison writes 1.0/0.0.
        u = torch.ones(len(self.gens), *shape, device=self.device)
        for i in self.dropping:
            self.gens[i].draw_(u[i], self.rates[i])
        return u.ge_(self.rate.view(per_run)).to(self.dtype).mul_(self.scale.view(per_run))

    def padded_draws(self, shape, widths: list[int]) -> torch.Tensor:
        """For a padded model (models.padded): each dropping run draws its own `widths[i]`
        of the last dim, as unpadded, into its slice of a buffer kept per shape (one draw
        per run and layer, where a pack has many runs); every other entry stays 1."""
        if shape not in self.padded:
            u = torch.ones(len(self.gens), *shape, device=self.device)
            drawn = [(u[i, ..., : widths[i]], self.gens[i], self.rates[i]) for i in self.dropping]
            self.padded[shape] = u, drawn
        u, drawn = self.padded[shape]
        for view, stream, rate in drawn:
            stream.draw_(view, rate)
        return u

    def apply_(self, h: torch.Tensor, widths: list[int] | None = None) -> None:
        """Multiply `h` (R, B, *S) by the masks in place. The dropping runs as one slice
        (a group's: its runs are sorted by variant) touch only that slice; otherwise (a
        pack's runs, zero-padded to `widths` or not) the whole stack takes `__call__`'s
        masks in one multiply, fewer ops where there are many runs."""
        if widths is not None or self.span is None:
            h.mul_(self(h.shape[1:], widths))
            return
        # h * keep * scale is h * (keep * scale) bit for bit (keep is 0 or 1).
        dropping, streams = h[self.span], self.gens[self.span]
        if all(s.takes_views for s in streams):
            # Each run's indicators multiplied in, then the scales: no mask tensor to fill.
            for hj, stream, rate in zip(dropping, streams, self.rates[self.span]):
                hj.mul_(stream.take(hj.numel(), rate).view(hj.shape))
        else:
            # Drawn into one buffer, one comparison for the slice: fewer ops on a GPU.
            u = torch.empty(dropping.shape, device=self.device)
            for uj, stream, rate in zip(u, streams, self.rates[self.span]):
                stream.draw_(uj, rate)
            dropping.mul_(u.ge_(self.span_rate).to(self.dtype))
        dropping.mul_(self.span_scale)

    def scale_grad_(self, g: torch.Tensor) -> None:
        """The masks' gradient where `g` is already 0 at every dropped unit (a ReLU's
        backward against the dropped output): each dropping run's scale (1 elsewhere)."""
        if self.span is not None:
            g[self.span].mul_(self.span_scale)
        else:
            g.mul_(self.scale.view(-1, *[1] * (g.dim() - 1)))
