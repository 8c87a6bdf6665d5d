"""What the config and the resource estimates need to know about each model family, without
torch (Snakemake reads this while it builds the DAG): the input layout it takes and the
multiply-adds of one run's forward pass on one sample. The networks themselves are in
doubledescent.models; tests/test_resources.py counts their multiply-adds against these.
"""

from __future__ import annotations

import math

# The input each model family takes: `vector` flattens any dataset, `image` needs (C, H, W)
# images, `sequence` MNIST-1D's 1-D signals (as one channel).
MODEL_INPUTS = {
    "mlp": "vector",
    "cnn5": "image",
    "preact_resnet18": "image",
    "mnist1d_cnn": "sequence",
}


def input_shape(name: str, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one sample as model `name` takes it, from the dataset's sample shape."""
    layout = MODEL_INPUTS[name]
    if layout == "vector":  # images (C, H, W) flatten to C*H*W
        return (math.prod(sample_shape),)
    if layout == "sequence":  # MNIST-1D's (L,) signals become one channel
        return (1, math.prod(sample_shape))
    return tuple(sample_shape)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """A convolution's output length along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


# Multiply-adds of the weights (convolutions and linear layers; biases, batchnorm, pooling
# and activations left out) of one run on one sample of `shape`, the model's input shape.


def _mlp(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """`depth` hidden layers of `width` on the flattened input, then the head."""
    return shape[0] * width + (model["depth"] - 1) * width * width + width * classes


def _cnn5(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """conv3x3 (padding 1) to c, 2c, 4c, 8c channels, a max-pool 2 after each of the last
    three (so the third and fourth run on maps of 1/4 and 1/16 the pixels), head 8c."""
    channels = [shape[0], width, 2 * width, 4 * width, 8 * width]
    (h, w), macs = shape[1:], 0
    for i in range(4):
        macs += 9 * channels[i] * channels[i + 1] * h * w
        if i > 0:
            h, w = h // 2, w // 2
    return macs + channels[-1] * classes


RESNET18_STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))  # (width multiple, first block's stride)


def _preact_resnet18(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """Stem conv3x3 to k, then per stage two blocks of two conv3x3 (the first of a stage
    strided, with a 1x1 shortcut where the shape changes), head 8k."""
    (h, w), c_in = shape[1:], width
    macs = 9 * shape[0] * width * h * w
    for multiple, stride in RESNET18_STAGES:
        for s in (stride, 1):
            c_out = multiple * width
            h, w = conv_out(h, 3, s, 1), conv_out(w, 3, s, 1)
            macs += 9 * (c_in + c_out) * c_out * h * w
            if s != 1 or c_in != c_out:
                macs += c_in * c_out * h * w
            c_in = c_out
    return macs + c_in * classes


MNIST1D_CNN_KERNELS = (5, 3, 3)  # each with stride 2 and padding 1


def _mnist1d_cnn(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """Three Conv1d of `width` channels, then the head on the flattened maps."""
    (c_in, length), macs = shape, 0
    for k in MNIST1D_CNN_KERNELS:
        length = conv_out(length, k, 2, 1)
        macs += c_in * width * k * length
        c_in = width
    return macs + width * length * classes


FORWARD_MACS = {
    "mlp": _mlp,
    "cnn5": _cnn5,
    "preact_resnet18": _preact_resnet18,
    "mnist1d_cnn": _mnist1d_cnn,
}


def forward_macs(model: dict, width: int, sample_shape: tuple[int, ...], classes: int) -> int:
    """Multiply-adds of one run's forward pass on one sample of the dataset's shape."""
    name = model["name"]
    return FORWARD_MACS[name](model, width, input_shape(name, sample_shape), classes)
