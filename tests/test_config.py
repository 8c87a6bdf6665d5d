import copy

import pytest
import yaml

from doubledescent import config, models
from tests.conftest import REPO, SCHEMA

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def default_with(path: str, value):
    """The default config with one key (dotted path below the experiment) replaced."""
    cfg = copy.deepcopy(DEFAULT)
    node = cfg["experiments"]["mnist1d_mlp"]
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return cfg


def test_default_config_reproduces_the_paper_setup():
    cfg = config.validate(DEFAULT, SCHEMA)
    exp = cfg["experiments"]["mnist1d_mlp"]
    assert len(exp["widths"]) == 19
    assert len(config.runs(exp)) == 19 * 4 * 3
    # Runs that share a shape train together: batchnorm changes the shape.
    assert len(config.groups(exp)) == 19 * 2
    assert len({r.run_id for r in config.runs(exp)}) == 19 * 4 * 3
    assert exp["training"]["epochs"] == 500


def test_defaults_are_filled():
    cfg = {
        "experiments": {
            "e": {
                "dataset": {"name": "mnist1d"},
                "model": {"name": "mlp"},
                "widths": [4],
                "regularizers": {"none": {}},
                "seeds": [0],
            }
        }
    }
    out = config.validate(cfg, SCHEMA)
    exp = out["experiments"]["e"]
    assert out["device"] == "auto" and out["threads"] == 1
    assert exp["training"]["lr"] == 0.01 and exp["training"]["batch_size"] == 100
    assert exp["regularizers"]["none"] == {"weight_decay": 0.0, "dropout": 0.0, "batchnorm": False}
    assert exp["plot"]["x"] == "n_params"
    assert "training" not in cfg["experiments"]["e"]  # the input is not modified


@pytest.mark.parametrize(
    "path,value,message",
    [
        ("widths", [2, -3], "config.experiments.mnist1d_mlp.widths[1]: -3 is less than"),
        ("widths", [], "config.experiments.mnist1d_mlp.widths: [] should be non-empty"),
        (
            "dataset.name",
            "imagenet",
            "config.experiments.mnist1d_mlp.dataset.name: 'imagenet' is not",
        ),
        ("dataset.label_noise", 1.5, "label_noise: 1.5 is greater than the maximum"),
        ("regularizers.l2", {"wd": 1}, "regularizers.l2: 'wd' was unexpected"),
        ("training.epochs", "many", "training.epochs: 'many' is not of type 'integer'"),
        ("training.eval_epochs", [1, 900], "eval_epochs: epoch 900 is past the last epoch (500)"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(path, value, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(default_with(path, value), SCHEMA)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_top_level_key():
    with pytest.raises(config.ConfigError, match=r"^config: 'experiment' was unexpected"):
        config.validate({**DEFAULT, "experiment": {}}, SCHEMA)


@pytest.mark.parametrize("epochs,n,expected", [(500, 20, None), (6, 3, [1, 2, 6]), (10, 1, [10])])
def test_eval_epochs_log_spaced_and_include_last(epochs, n, expected):
    got = config.eval_epochs({"epochs": epochs, "eval_epochs": n})
    assert got[-1] == epochs and got == sorted(set(got)) and got[0] >= 1
    if expected is not None:
        assert got == expected
    else:
        assert 15 <= len(got) <= 20 and got[0] == 1


def test_group_spec_holds_only_what_training_needs():
    cfg = config.validate(DEFAULT, SCHEMA)
    exp = cfg["experiments"]["mnist1d_mlp"]
    spec = config.group_spec("mnist1d_mlp", exp, "width~47_norm~none")
    assert {r["regularizer"] for r in spec["runs"]} == {"none", "l2", "dropout"}
    assert "widths" not in spec and "plot" not in spec
    # Adding a width does not change the spec of an existing group: no retraining.
    wider = {**exp, "widths": exp["widths"] + [400]}
    assert config.group_spec("mnist1d_mlp", wider, "width~47_norm~none") == spec


def test_mlp_only_settings_do_not_retrain_a_conv_net():
    raw = {**DEFAULT["experiments"]["mnist1d_mlp"], "model": {"name": "mnist1d_cnn"}}
    exp = config.validate({"experiments": {"e": raw}}, SCHEMA)["experiments"]["e"]
    gid = next(iter(config.groups(exp)))
    spec = config.group_spec("e", exp, gid)
    deeper = {
        **exp,
        "model": {**exp["model"], "depth": 5, "batchnorm_position": "after_activation"},
    }
    assert config.group_spec("e", deeper, gid) == spec
    # The MLP's depth is its layer structure: changing it must retrain.
    mlp = config.validate(DEFAULT, SCHEMA)["experiments"]["mnist1d_mlp"]
    mlp_gid = next(iter(config.groups(mlp)))
    deeper_mlp = {**mlp, "model": {**mlp["model"], "depth": 5}}
    assert config.group_spec("m", deeper_mlp, mlp_gid) != config.group_spec("m", mlp, mlp_gid)


def test_schema_lists_exactly_the_model_registry():
    schema = yaml.safe_load(SCHEMA.read_text())
    names = set(schema["$defs"]["model"]["properties"]["name"]["enum"])
    assert names == set(models.MODELS) == set(config.MODEL_INPUTS)


@pytest.mark.parametrize(
    "model,dataset,message",
    [
        ("cnn5", "mnist1d", "model.name: cnn5 needs image data, and mnist1d is not an image"),
        ("preact_resnet18", "mnist1d", "model.name: preact_resnet18 needs image data"),
        (
            "mnist1d_cnn",
            "cifar10",
            "model.name: mnist1d_cnn takes 1-D signals (mnist1d), not cifar10's images",
        ),
        ("mnist1d_cnn", "digits", "model.name: mnist1d_cnn takes 1-D signals"),
    ],
)
def test_model_that_cannot_take_the_dataset(model, dataset, message):
    cfg = default_with("model", {"name": model})
    cfg["experiments"]["mnist1d_mlp"]["dataset"] = {"name": dataset, "n_train": 100, "n_test": 100}
    with pytest.raises(config.ConfigError) as e:
        config.validate(cfg, SCHEMA)
    assert str(e.value).startswith("config.experiments.mnist1d_mlp.model.name: ")
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "model,dataset",
    [
        ("mlp", "cifar10"),
        ("cnn5", "digits"),
        ("preact_resnet18", "cifar100"),
        ("mnist1d_cnn", "mnist1d"),
    ],
)
def test_model_that_takes_the_dataset(model, dataset):
    cfg = default_with("model", {"name": model})
    cfg["experiments"]["mnist1d_mlp"]["dataset"] = {"name": dataset, "n_train": 100, "n_test": 100}
    config.validate(cfg, SCHEMA)
