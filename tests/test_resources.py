"""Resource requests for training jobs grow with the work and cover what was measured."""

import yaml

from doubledescent import config, resources
from tests.conftest import REPO, SCHEMA

DEFAULT = config.validate(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)
EXP = DEFAULT["experiments"]["mnist1d_mlp"]


def test_runtime_grows_with_width_and_runs_and_covers_a_measurement():
    small, wide = (resources.train_runtime_min(EXP, w, 9) for w in (2, 300))
    assert resources.STARTUP_MIN <= small < wide
    assert resources.train_runtime_min(EXP, 300, 3) < wide
    # Measured: width 300, 9 runs, 500 epochs took 1.82 s/epoch = 15 min on one thread.
    assert wide >= 2 * 15


def test_memory_covers_the_measured_peak_and_cuda():
    # Measured peak RSS: ~970 MB for width 300 with 9 runs.
    assert resources.train_mem_mb(EXP, 300, 9) >= 1.2 * 970
    cpu, gpu = (resources.train_mem_mb(EXP, 300, 9, gpu=g) for g in (False, True))
    assert gpu > cpu


def test_priority_orders_jobs_by_cost():
    # Longest first: a wider group, or one with more runs, starts before a cheaper one.
    p = {(w, n): resources.train_priority(EXP, w, n) for w in (2, 47, 300) for n in (3, 9)}
    assert p[300, 9] > p[300, 3] > p[47, 9] > p[47, 3] > p[2, 9] >= p[2, 3] >= 0
