"""The typed group spec: its plain form is its rerun key, and parses back to it."""

import json

import pytest

from doubledescent import config, packing
from doubledescent.specs import WeightReuse
from tests.conftest import REPO, SCHEMA

CONFIGS = [[REPO / "config.yaml"]] + [
    [path] for path in sorted((REPO / "tests" / "configs").glob("*.yaml"))
]
PRESETS = [[REPO / "config.yaml", p] for p in sorted((REPO / "workflow" / "presets").glob("*"))]


def job_specs(paths):
    cfg = config.load_files(paths, SCHEMA)
    for name, exp in cfg["experiments"].items():
        for job in set(packing.jobs(exp, False)) | set(packing.jobs(exp, True)):
            yield packing.job_spec(name, exp, job)


@pytest.mark.parametrize("paths", CONFIGS + PRESETS, ids=lambda ps: ps[-1].stem)
def test_a_job_parses_its_rerun_key_back_to_its_spec(paths):
    """What the train rule passes (`rerun_key`) is all the job needs: parsing it gives the
    spec that config built, every group and pack of every config and preset."""
    for spec in job_specs(paths):
        key = config.rerun_key(spec)
        parsed = config.spec_from_dict(json.loads(key))
        assert parsed == spec and config.rerun_key(parsed) == key


def test_settings_left_out_are_none_and_absent_from_the_key():
    """A setting the config leaves out is None in the typed record and no key in the rerun
    key; one it gives is in both, even at the value that its absence means."""
    plain = next(job_specs([REPO / "config.yaml"]))
    assert plain.training.steps is None and plain.training.weight_reuse is None
    assert plain.training.gamma == 0.9 and plain.training.schedule_gamma is None
    training = config.plain_spec(plain)["training"]
    assert {"steps", "eval_steps", "weight_reuse", "schedule_gamma"}.isdisjoint(training)
    assert training["epochs"] == plain.training.epochs == 500

    reusing = next(job_specs([REPO / "tests" / "configs" / "tiny_reuse.yaml"]))
    assert reusing.training.weight_reuse == WeightReuse(below_width=10)
    assert reusing.training.epochs is None and reusing.training.steps == 40
    training = config.plain_spec(reusing)["training"]
    assert training["weight_reuse"] == {"below_width": 10} and training["schedule_gamma"] == 0.9
    assert "epochs" not in training and "eval_epochs" not in training
