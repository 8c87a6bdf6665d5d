"""A training job killed with SIGKILL resumes from its checkpoint and ends with the same numbers."""

import dataclasses
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch

from doubledescent import checkpoint, config, data, train
from tests.conftest import SCHEMA, crash_on_call, mnist1d_spec, wait_while_running
from tests.test_conv_models import image_data

METRICS = ["epoch", "train_loss", "train_error", "test_loss", "test_error", "noisy_fit"]


def spec() -> dict:
    exp = {
        "dataset": mnist1d_spec(),  # small_data's: the job trains on that dataset
        "model": {"name": "mlp", "depth": 2},
        "widths": [256],
        "regularizers": {
            "none": {"weight_decay": 0.0, "dropout": 0.0, "batchnorm": False},
            "dropout": {"weight_decay": 0.0, "dropout": 0.3, "batchnorm": False},
        },
        "seeds": [0, 1],
        "training": {
            "optimizer": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "batch_size": 10,
            "epochs": 40,
            "loss": "cross_entropy",
            "eval_epochs": 6,
        },
    }
    exp = config.validate({"experiments": {"resume": exp}}, SCHEMA)["experiments"]["resume"]
    return config.group_spec("resume", exp, "width~256_norm~none")


STEPS_PER_EPOCH = 30  # 300 samples in batches of 10


def checkpoint_epoch(path) -> int:
    return torch.load(path, weights_only=False)["step"] // STEPS_PER_EPOCH


def paused_after_a_checkpoint(folder, ckpt) -> dict:
    """The environment that makes a training job pause after writing `ckpt` (see
    checkpoint.PAUSE_ENV), and ask it to."""
    (folder / f"{ckpt.name}.pause").touch()
    return {**os.environ, checkpoint.PAUSE_ENV: str(folder)}


def wait_for(path, job) -> None:
    """Until the job has written `path` (an event); fail if the job ends first."""
    wait_while_running(path.exists, job, job.stdout.read)


def test_sigkill_then_rerun_matches_uninterrupted(tmp_path, small_data):
    data.save(small_data, tmp_path / "data.npz")
    ckpt, out = tmp_path / "group.pt", tmp_path / "group.parquet"
    cmd = [
        sys.executable,
        "-m",
        "doubledescent",
        "train",
        "--spec",
        config.rerun_key(spec()),
        "--data",
        str(tmp_path / "data.npz"),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--checkpoint",
        str(ckpt),
        "--checkpoint-every",
        "3",
    ]
    env = paused_after_a_checkpoint(tmp_path, ckpt)
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    wait_for(tmp_path / f"{ckpt.name}.paused", job)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert checkpoint_epoch(ckpt) == 3 and not out.exists()

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    step = 3 * STEPS_PER_EPOCH
    assert f"resuming from the checkpoint at step {step} (epoch 3)" in rerun.stdout
    assert not ckpt.exists()  # removed once the table is written

    resumed = pd.read_parquet(out)
    whole = train.train_group(spec(), small_data, device="cpu", log=lambda s: None)
    pd.testing.assert_frame_equal(resumed[METRICS], whole[METRICS])
    assert (resumed.wall_time.diff().dropna() >= 0).all()


def test_checkpoint_of_another_spec_is_ignored(tmp_path, small_data):
    other = spec()
    other = dataclasses.replace(other, training=dataclasses.replace(other.training, lr=0.01))
    group = train.make_group(other, list(other.runs), (40,), 10, "cpu")
    group.step = 5
    checkpoint.save(tmp_path / "c.pt", other, group, checkpoint.Progress(elapsed=2.0))
    group.step = 0
    assert checkpoint.resume(tmp_path / "c.pt", spec(), group) is None
    assert checkpoint.resume(tmp_path / "c.pt", other, group).elapsed == 2.0
    assert group.step == 5


def test_conv_group_resumes_after_a_crash_with_the_same_numbers(tmp_path, monkeypatch):
    """A conv group with batchnorm, dropout and augmentation: every stream and statistic
    that the next epoch depends on comes back from the checkpoint."""
    exp = config.validate(
        {
            "experiments": {
                "c": {
                    "dataset": {"name": "cifar10", "n_train": 48, "n_test": 8},
                    "model": {"name": "cnn5"},
                    "widths": [2],
                    "regularizers": {
                        "bn": {"batchnorm": True, "dropout": 0.2, "weight_decay": 0.01}
                    },
                    "seeds": [0, 1],
                    "training": {
                        "optimizer": "adam",
                        "lr": 1e-3,
                        "batch_size": 16,
                        "epochs": 4,
                        "eval_epochs": [1, 2, 3, 4],
                        "augment": {"crop_padding": 2, "hflip": True},
                        "schedule": "inverse_sqrt",
                        "schedule_steps": 2,
                    },
                }
            }
        },
        SCHEMA,
    )
    spec = config.group_spec("c", exp["experiments"]["c"], "width~2_norm~batch")
    arrays = image_data("cnn5")
    whole = train.train_group(spec, arrays, device="cpu", log=lambda s: None)

    real_epoch = crash_on_call(monkeypatch, train, "train_epoch", 3)  # in the third epoch
    ckpt = tmp_path / "c.pt"
    with pytest.raises(KeyboardInterrupt):
        train.train_group(
            spec, arrays, device="cpu", log=lambda s: None, checkpoint_path=ckpt, checkpoint_every=1
        )
    monkeypatch.setattr(train, "train_epoch", real_epoch)
    lines = []
    resumed = train.train_group(
        spec, arrays, device="cpu", log=lines.append, checkpoint_path=ckpt, checkpoint_every=1
    )
    assert lines[0] == "resuming from the checkpoint at step 6 (epoch 2)"  # 3 batches of 16
    pd.testing.assert_frame_equal(resumed[METRICS], whole[METRICS])
