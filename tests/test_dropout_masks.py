"""Dropout's mask streams (regularizers.dropout_masks): the rate they keep, their order over
strided views, their checkpointed state, and the GPU's torch stream run here on the CPU."""

import math

import pytest
import torch

from doubledescent import train
from doubledescent.config import Run
from doubledescent.regularizers.dropout_masks import BitStream, DropoutMasks
from tests.test_train import ReferenceDropout


def test_the_cpu_stream_drops_at_its_rate():
    rate, n = 0.3, 1_000_000
    out = torch.empty(n)
    BitStream(seed=7).draw_(out, rate)
    assert set(out.unique().tolist()) == {0.0, 1.0}
    sigma = math.sqrt(rate * (1 - rate) / n)
    assert abs((1 - out.mean().item()) - rate) < 5 * sigma


def test_the_cpu_stream_is_the_reference_definition():
    """Row-major draws in a strided view (a padded run's slice of its buffer) are the ones a
    contiguous tensor of the same shape gets, and they are the tests' independent
    ReferenceDropout's."""
    buffer = torch.full((5, 9), 7.0)
    BitStream(seed=3).draw_(buffer[:, :6], 0.25)
    assert (buffer[:, 6:] == 7).all()
    reference = ReferenceDropout(Run(6, "dropout", 3, dropout=0.25)).mask(5, 6) * 0.75
    assert torch.equal(buffer[:, :6].double(), reference)


def test_masks_across_blocks_are_the_reference_sequence():
    """Masks of any sizes, ending on and across block boundaries, and one larger than the
    largest block (a conv net's), continue one sequence of draws."""
    block = BitStream.BLOCK
    sizes = [(3, 5), (1, block - 15), (2, block), (7, 11), (1, block - 77), (3, BitStream.CAP)]
    stream, reference = BitStream(seed=5), ReferenceDropout(Run(4, "dropout", 5, dropout=0.4))
    for shape in sizes:
        got = torch.empty(shape)
        stream.draw_(got, 0.4)
        assert torch.equal(got.double(), reference.mask(*shape) * 0.6), shape


def test_a_stream_resumes_from_its_saved_state():
    """Saved before any draw, mid-block and at a block's end (the next mask starts a new
    block), a stream restored into a fresh one continues as the original does."""
    eighth = BitStream.BLOCK // 8  # a mask of this size draws a block of exactly BLOCK
    for used in ([], [1000], [eighth] * 8):
        streams = [BitStream(seed=1), train.torch_mask_stream(1)]
        fresh = [BitStream(seed=99), train.torch_mask_stream(99)]
        for n in used:
            for stream in streams:
                stream.draw_(torch.empty(n), 0.5)
        if len(used) == 8:
            assert streams[0].pos == streams[0].size == BitStream.BLOCK
        for stream, other in zip(streams, fresh):
            other.set_state(stream.get_state())
            first, again = torch.empty(3, BitStream.BLOCK), torch.empty(3, BitStream.BLOCK)
            stream.draw_(first, 0.5)
            other.draw_(again, 0.5)
            assert torch.equal(first, again), (type(stream).__name__, used)


def test_a_cpu_stream_serves_one_rate():
    stream = BitStream(seed=0)
    stream.draw_(torch.empty(4), 0.1)
    with pytest.raises(ValueError, match="one rate"):
        stream.draw_(torch.empty(4), 0.2)


def test_the_gpus_torch_stream_is_uniforms_at_least_the_rate():
    """What a CUDA run's masks are, checked on the CPU's torch generator: each dropping run's
    uniforms from its own generator, kept where >= its rate, scaled by 1 / (1 - rate)."""
    rates = [0.0, 0.2, 0.5]
    streams = [train.torch_mask_stream(s) for s in range(3)]
    masks = DropoutMasks(rates, streams, "cpu", torch.float64)((4, 6))
    for i, p in enumerate(rates):
        if p == 0:
            assert (masks[i] == 1).all()
            continue
        u = torch.rand(4, 6, generator=train.generator(i, "dropout"))
        assert torch.equal(masks[i], (u >= p).double() / (1 - p))


def test_both_ways_of_taking_masks_agree_for_either_stream():
    """A hand-written step's `apply_` (per-run indicators on the dropping slice) and the
    autograd models' masks from `__call__` (one comparison over the stack) multiply the
    same masks in, with CPU and GPU streams alike."""
    rates = [0.0, 0.0, 0.3, 0.3]
    makers = {
        "bits": lambda s: train.mask_stream(s, "cpu"),
        "torch": train.torch_mask_stream,
    }
    for name, make in makers.items():
        h = torch.rand(4, 8, 5, dtype=torch.float64)
        masks = DropoutMasks(rates, [make(s) for s in range(4)], "cpu", torch.float64)
        expected = h * masks((8, 5))
        DropoutMasks(rates, [make(s) for s in range(4)], "cpu", torch.float64).apply_(h)
        assert torch.equal(h, expected), name


def test_a_gpu_slice_compares_its_runs_uniforms_once():
    """On a GPU every op is a kernel launch: the dropping slice's uniforms go into one
    buffer (a draw per run) and take one comparison and one multiply, whatever its runs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    rates = [0.0, 0.2, 0.2, 0.2]
    masks = DropoutMasks(
        rates, [train.torch_mask_stream(s) for s in range(4)], "cpu", torch.float32
    )
    h = torch.rand(4, 8, 5)
    with Ops() as ops:
        masks.apply_(h)
    assert ops.names.count("uniform_") == 3
    assert ops.names.count("ge_") == 1 and ops.names.count("mul_") == 2
