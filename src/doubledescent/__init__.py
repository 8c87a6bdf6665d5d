"""Double descent in neural networks: data, vectorized training, tidy results, figures."""

__version__ = "0.1.0"
