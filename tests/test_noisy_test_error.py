"""`test_error_noisy`, the expected error on test labels drawn from the noise model, against a
brute-force expectation (each sample's noisy-label distribution enumerated) and against the
mean over many draws of the pipeline's own label noise."""

import numpy as np
import pytest

from doubledescent import data

MODES = ["wrong_class", "random_class"]


def label_distribution(y: int, rate: float, k: int, mode: str) -> np.ndarray:
    """P(noisy label = c | clean label y), written out class by class."""
    p = np.zeros(k)
    p[y] += 1 - rate  # kept
    for c in range(k):
        if mode == "random_class":
            p[c] += rate / k  # any class, the true one too
        elif c != y:
            p[c] += rate / (k - 1)  # another class
    return p


def predictions(n: int, k: int, clean_error: float, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = y.copy()
    wrong = rng.choice(n, size=round(clean_error * n), replace=False)
    pred[wrong] = (y[wrong] + rng.integers(1, k, len(wrong))) % k
    return y, pred


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [2, 3, 10])
@pytest.mark.parametrize("rate", [0.0, 0.15, 0.5])
def test_equals_the_enumerated_expectation(mode, k, rate):
    y, pred = predictions(200, k, 0.3, seed=k)
    expected = np.mean([1 - label_distribution(t, rate, k, mode)[p] for t, p in zip(y, pred)])
    clean = np.mean(pred != y)
    assert data.noisy_label_error(clean, rate, k, mode) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_equals_the_mean_error_over_draws_of_the_pipelines_label_noise(mode):
    k, rate, n = 10, 0.2, 1000  # rate * n whole: add_label_noise flips exactly 200 labels
    y, pred = predictions(n, k, 0.35, seed=1)
    rng = np.random.default_rng(0)
    draws = [np.mean(pred != data.add_label_noise(y, rate, k, mode, rng)) for _ in range(2000)]
    # One draw's error has sd ~ 0.015 here; the mean of 2000, ~ 3e-4.
    assert np.mean(draws) == pytest.approx(
        data.noisy_label_error(np.mean(pred != y), rate, k, mode), abs=1.5e-3
    )


def test_no_noise_leaves_the_clean_error_and_chance_stays_chance():
    e = np.array([0.0, 0.25, 0.9])
    for mode in MODES:
        np.testing.assert_allclose(data.noisy_label_error(e, 0.0, 10, mode), e)
        # A predictor at chance (e = 0.9 of 10 classes) stays at chance on any labels.
        assert data.noisy_label_error(0.9, 0.3, 10, mode) == pytest.approx(0.9)
    # Nakkiran et al.'s 15% wrong-class noise: a perfect classifier scores 15% on noisy labels.
    assert data.noisy_label_error(0.0, 0.15, 10, "wrong_class") == pytest.approx(0.15)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown label-noise mode 'flip'"):
        data.noisy_label_error(0.1, 0.1, 10, "flip")
