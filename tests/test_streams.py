"""Random streams: every purpose, of data and of training, draws from a stream of its own."""

import torch

from doubledescent import config, data, streams, train
from tests.conftest import SCHEMA, mnist1d_spec


def test_every_purpose_has_its_own_key():
    assert len(set(streams.STREAMS.values())) == len(streams.STREAMS)


def test_training_streams_keep_the_values_finished_runs_drew():
    """Run seed 0's first draws, as every version before the registry made them."""
    perms = {
        s: torch.randperm(8, generator=train.generator(0, s)).tolist()
        for s in ("init", "order", "dropout", "augment")
    }
    assert perms == {
        "init": [4, 1, 3, 5, 0, 2, 6, 7],
        "order": [4, 7, 5, 2, 1, 0, 6, 3],
        "dropout": [1, 0, 2, 7, 3, 6, 4, 5],
        "augment": [7, 0, 4, 6, 2, 1, 3, 5],
    }


def test_data_and_training_never_share_a_stream_when_their_seeds_agree(monkeypatch):
    """Dataset seed == run seed (the ResNet preset's choice): record every stream that data
    preparation, a sweep's subset and a group's setup open; none may be opened twice."""
    opened = []
    real = streams.seed_sequence

    def recording(seed, purpose):
        opened.append((seed, streams.STREAMS[purpose]))
        return real(seed, purpose)

    monkeypatch.setattr(streams, "seed_sequence", recording)
    seed = 7
    arrays = data.build(mnist1d_spec(seed=seed, n_train=200, n_test=50, validation=20))
    data.nested_subset(arrays, 100, seed)
    exp = {
        "dataset": mnist1d_spec(seed=seed, n_train=200, n_test=50),
        "model": {"name": "mlp"},
        "widths": [4],
        "regularizers": {"drop": {"dropout": 0.5}},
        "seeds": [seed],
    }
    exp = config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]
    spec = config.group_spec("e", exp, "width~4_norm~none")
    train.make_group(spec, list(spec.runs), (40,), 10, "cpu")
    assert len(opened) == len(set(opened)) == 3 + 4  # noise, validation, subset; the run's 4
