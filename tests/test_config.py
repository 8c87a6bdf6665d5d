import copy
import dataclasses
import hashlib

import pytest
import yaml

from doubledescent import architectures, config, specs
from doubledescent.data import SOURCES
from tests.conftest import REPO, SCHEMA, training_settings

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
    assert exp["regularizers"]["none"] == {
        "weight_decay": 0.0,
        "dropout": 0.0,
        "batchnorm": False,
        "label_smoothing": 0.0,
    }
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
    got = training_settings(epochs=epochs, eval_epochs=n).eval_epoch_list()
    assert got[-1] == epochs and got == sorted(set(got)) and got[0] >= 1
    if expected is not None:
        assert got == expected
    else:
        assert 15 <= len(got) <= 20 and got[0] == 1


def test_group_spec_holds_only_what_training_needs():
    cfg = config.validate(DEFAULT, SCHEMA)
    exp = cfg["experiments"]["mnist1d_mlp"]
    spec = config.group_spec("mnist1d_mlp", exp, "width~47_norm~none")
    assert {r.regularizer for r in spec.runs} == {"none", "l2", "dropout"}
    assert "widths" not in config.plain_spec(spec) and "plot" not in config.plain_spec(spec)
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


def test_every_family_option_is_a_config_key():
    """What a family reads (Family.reads) is a key of the schema, with or without a default."""
    defs = yaml.safe_load(SCHEMA.read_text())["$defs"]
    assert config.family_options() == [
        "model.batchnorm_position",
        "model.depth",
        "model.init",
        "training.weight_reuse",
    ]
    for key in config.family_options():
        section, option = key.split(".")
        assert option in defs[section]["properties"], key


def test_the_schema_check_takes_the_model_names_from_the_registry():
    with pytest.raises(config.ConfigError) as e:
        config.validate(default_with("model.name", "resnet"), SCHEMA)
    assert str(e.value) == (
        "config.experiments.mnist1d_mlp.model.name: 'resnet' is not one of "
        f"{sorted(architectures.FAMILIES)}"
    )
    assert "enum" not in yaml.safe_load(SCHEMA.read_text())["$defs"]["model"]["properties"]["name"]


def test_the_schema_check_takes_the_dataset_names_from_the_registry(monkeypatch):
    with pytest.raises(config.ConfigError) as e:
        config.validate(default_with("dataset.name", "svhn"), SCHEMA)
    assert str(e.value) == (
        f"config.experiments.mnist1d_mlp.dataset.name: 'svhn' is not one of {list(SOURCES)}"
    )
    # A registered source is a valid name with no schema edit.
    monkeypatch.setitem(SOURCES, "svhn", SOURCES["mnist1d"])
    assert config.validate(default_with("dataset.name", "svhn"), SCHEMA)


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


# sha256 of each group spec of config.yaml as the train rule's params carry it (its canonical
# JSON), from before rerun keys were derived by config.INERT: users' finished groups of the
# default config must never retrain because of a code change. Change one only on purpose.
GOLDEN_SPECS = {
    "mnist1d_mlp": """
width~104_norm~batch accf7a9e1e61d69c0f186fcc930daae71f7c4ebeea5df72ccd171a2f020cb0b4
width~104_norm~none ba0b046673cf51c64929f03d265cb74a022386b18f80200dc65aaa3de5c6c408
width~12_norm~batch ade6764e88d5c5fd0667375eb6845f87ba169b9364486a69ba5bfa704cfe510b
width~12_norm~none c1d757d589996bf46bb4a23342da34936a851fde9a8c154f861fbbea88456b43
width~135_norm~batch a68f4099c38e216362451dc83d416db653d5e03b196d6f8cbd86daceb59a3593
width~135_norm~none b43ee80bf6af36f463a4a5d228a6f4d37496436065b5665f2d04bebc2a85f8d3
width~16_norm~batch d28c0f9c05c1eb3a1cc1cf1ca89d9904a97743a565d4a5f479d319e5fc20d690
width~16_norm~none d9f532bd09c2535126aa75f78fd1749487a2fd916825e7e4b1b63cb4ae02ee69
width~177_norm~batch 99aeea5302ba947ec6ba01d9b89aa8eec407482866d21189d02331bd8eed4dc6
width~177_norm~none 759a722da52bf8e17cc5b27b3d402532738bb8c530908e37480e271e8b2826b0
width~21_norm~batch 3ada4d04157066a63292806753e34499b1042247a0fba2ed26486e9bb9c6d001
width~21_norm~none 1ee10da1bfa282e76e683a9e9676552b74d7c3af36a5e254d96d7c31b0075b4c
width~230_norm~batch b9485b31ad7a77e8915e7021a3427720d975a0d48600126bbbc2070a014e33b1
width~230_norm~none add05801269a6799179b76940e718133081ad4d2332b012b3704bd26be8222a3
width~27_norm~batch 46c1205434b28781ed353cb09e4ae1187367baca97f5922a9eb1af903a12aa39
width~27_norm~none c49cb5101384497b5576f6be99377ee03b903e2fd7c4426a1603819641d8ce66
width~2_norm~batch bf82a9432b7af3b81d329f011260dc7d74e4f64d6eb02afef0aea041bffcce0a
width~2_norm~none 0f5b385981c7daf063b66ca99a5cfc41ac4e38da171ee48e1b670482cb91672e
width~300_norm~batch f68c9e0b04ec9871d163a64cb7de5100651368e71b95cf123f5abf60ad75eb49
width~300_norm~none ee672044c5847b6ef93de0ffe1a839e8d08ce0db3819027f370a44b1af4f86d8
width~36_norm~batch b122064b63952aef0e6187f9109e4ee69f8913d6a5e4b3d5099f3681e6d0b5d2
width~36_norm~none 24cc9f3494f8c09d47cb30793862d876f4e3631af665d06806f4983ca109d36f
width~3_norm~batch a2b3f5c389a983ca747223071d9e2b1d934f0243613ee57fba6a09b451fae482
width~3_norm~none c0c50fd5d789412c8dc9e9fed115d3beff61d1855d465518ee72ef67e4d5b74e
width~47_norm~batch 398902e41a4c6135e3257eeca421babbcc272d9712ee8e41ac6b1c119f16d030
width~47_norm~none c42cc4daa06c713b6d2de88aaa502ca9e1ee56c3e33ff715b3d165dc4f5de2c9
width~4_norm~batch 68ea69e29e9d91ff583167ebc86560ccc81abfd3c681fbfd7ce071da06a6bf14
width~4_norm~none 958db3f9f4dbef8aca2bc64dec64e482f4a5128f81dc8f56d7dc1ea06e980094
width~5_norm~batch cfba89c6b85846359ae129fc91517682eb4b8af5c5650fb4830d687bc9b13649
width~5_norm~none e0874d6c9c484dcf7978a6c4d1dedfd2412e099abcf63461026bf9e03ce18c53
width~61_norm~batch d342c851667a5648e0838c6ef4dca2d67fb89300f833ce64a8a501cf8309e429
width~61_norm~none fc78a972d19833f4c25bbcacf51e9a930aaca238e8cda179c32a9e79c327db2a
width~7_norm~batch 2f12fa02e341c08bcc05e155fee2ec4cbb741a4eace8ceec981273bd812c84d8
width~7_norm~none e73d830b292025a6469af93a1e9c6378a12920fe6d1d8d6d6e39ef4acf44aad1
width~80_norm~batch a02565801f7a3ccfbd7ed16b52b48cda9dac9b705a9eef70ae23de640c3d71a7
width~80_norm~none aab566ab331f7298960702fa9715f821dd716a701b0e08ebb01041d136bd7ae5
width~9_norm~batch 5b0dc1c19bef5211a43630c9e1648117371b3c60a8b975292aa7965a785ce77b
width~9_norm~none 198e66cd7da4fca91b5bf02e7bb9f4a3d4f73ac59b271692bba87265f4fd35e1
""",
    "mnist1d_optimal_l2": """
width~104_norm~none e6e05cb49493ca781219297e29969999baecedacbef7adcf8886688f1165a998
width~16_norm~none 911fd8ad866db76e4905474df3dd0174a2557c5e629abb7bc0cad9545524e3a4
width~27_norm~none 55377e3934aead73330d265a6e8fac65cd8c4bbef39ee32df382ac9bc899b835
width~36_norm~none aea858a49e6a3edde4ec390b827a2ccfb11a1c0cd862c2adee74150b11a5c785
width~47_norm~none 68e940b0e95746bb52255b5488ee7e0ad0bac8adb1a91c4661c780e92d417ce8
width~4_norm~none bdc518d0658c205c1a915e59698e9217e6bc1309e61c151726fda16cfa7d32ff
width~61_norm~none a1901b80b37eccb829cdea5357b4341d566c64de4b328c39d19bd85d97d2161a
width~80_norm~none e52c1151c2545504ee0063c2a5e296018ef09b77cf417afab63aa2192e7d22d9
width~8_norm~none a083bb64f3fcf33a0da7dfc5565b9b365ec6401e0a08fc9741ff9620644c9e36
""",
}


def spec_hashes(experiments: dict) -> dict[str, str]:
    return {
        name: "".join(
            f"{gid} {hashlib.sha256(config.rerun_key(spec).encode()).hexdigest()}\n"
            for gid in sorted(config.groups(exp))
            for spec in [config.group_spec(name, exp, gid)]
        )
        for name, exp in experiments.items()
    }


def test_default_group_specs_are_pinned():
    experiments = config.validate(DEFAULT, SCHEMA)["experiments"]
    assert spec_hashes(experiments) == {k: v.lstrip("\n") for k, v in GOLDEN_SPECS.items()}


def test_default_data_params_are_pinned():
    """The prepare_data rule's rerun key: a new one rebuilds the data and retrains all."""
    experiments = config.validate(DEFAULT, SCHEMA)["experiments"]
    hashes = {
        name: hashlib.sha256(config.canonical_json(config.data_params(exp)).encode()).hexdigest()
        for name, exp in experiments.items()
    }
    assert hashes == {
        "mnist1d_mlp": "f3627b548a0c51132987dc58d228a746abf828fe911f138336f70a4be9451ad2",
        "mnist1d_optimal_l2": "0c85e3da0d972cb4d63c743bd973493acc81867775930c1f2f20dcf8ec4cd667",
    }


def with_field(record: type, name: str, default) -> type:
    """`record` (a spec's typed record) with one more field, as adding an option adds it."""
    return dataclasses.make_dataclass(
        record.__name__,
        [(name, type(default), dataclasses.field(default=default))],
        bases=(record,),
        frozen=True,
    )


def test_a_new_option_at_its_default_leaves_every_spec_as_it_was(monkeypatch):
    """What adding an option means: its schema default fills every config, its field in the
    typed record has that default, and its INERT line keeps it out of the specs until a
    config sets another value."""
    experiments = config.validate(DEFAULT, SCHEMA)["experiments"]
    before = spec_hashes(experiments)
    data_before = [config.data_params(exp) for exp in experiments.values()]
    monkeypatch.setattr(
        config, "TrainingSettings", with_field(specs.TrainingSettings, "label_smoothing", 0.0)
    )
    monkeypatch.setattr(config, "DatasetSpec", with_field(specs.DatasetSpec, "crop", False))
    new = config.Inert(("training", "label_smoothing"), default=0.0)
    new_data = config.Inert(("dataset", "crop"), default=False)
    monkeypatch.setattr(config, "INERT", (*config.INERT, new, new_data))
    for exp in experiments.values():
        exp["training"]["label_smoothing"] = 0.0
        exp["dataset"]["crop"] = False
    assert spec_hashes(experiments) == before
    assert [config.data_params(exp) for exp in experiments.values()] == data_before
    exp = experiments["mnist1d_mlp"]
    exp["training"]["label_smoothing"] = 0.1
    spec = config.group_spec("mnist1d_mlp", exp, "width~47_norm~none")
    assert spec.training.label_smoothing == 0.1
    assert config.plain_spec(spec)["training"]["label_smoothing"] == 0.1


def test_a_sweeps_size_is_in_its_specs_and_nowhere_else():
    sweep = config.load(REPO / "tests" / "configs" / "tiny_samplewise.yaml", SCHEMA)
    exp = sweep["experiments"]["tiny_samplewise"]
    spec = config.group_spec("s", exp, "n~150_width~4_norm~none")
    assert spec.n_train == 150 and {r.n_train for r in spec.runs} == {150}
    plain = config.validate(DEFAULT, SCHEMA)["experiments"]["mnist1d_mlp"]
    spec = config.group_spec("m", plain, "width~4_norm~none")
    fields = config.plain_spec(spec)
    assert "n_train" not in fields and not any("n_train" in r for r in fields["runs"])
