"""training.config: defaults == defaults.yaml, strict YAML, overrides, validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from desktop_app.infra.errors import ConfigError
from training.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    default_config_path,
    load_config_file,
    parse_set_option,
    write_config,
)


class TestDefaults:
    def test_defaults_yaml_matches_the_dataclasses(self) -> None:
        assert load_config_file(default_config_path()) == TrainConfig()

    def test_every_key_of_the_defaults_is_documented_in_the_yaml(self) -> None:
        data = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
        expected = TrainConfig().to_dict()
        assert data.keys() == expected.keys()
        for section, values in expected.items():
            if isinstance(values, dict):
                assert set(data[section]) == set(values), section

    def test_defaults_are_valid_and_resolve_to_lite0_at_224(self) -> None:
        config = TrainConfig().resolved().validate()
        spec = config.preprocess_spec()
        assert config.model.arch == "efficientnet-lite0" and config.model.pretrained
        assert (spec.image_size, spec.output_scaling, spec.channels) == (224, "lite", 3)
        assert config.augment.hflip_prob == 0.0  # chest: the heart's side matters

    def test_resolved_config_round_trips_through_yaml(self, tmp_path: Path) -> None:
        config = replace(TrainConfig(), seed=7).resolved()
        write_config(config, tmp_path / "config.yaml")
        assert load_config_file(tmp_path / "config.yaml") == config


class TestStrictParsing:
    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"optim": {"epochz": 3}}, r"unknown config key optim\.epochz \(known keys in optim: epochs,"),
            ({"nonsense": 1}, r"unknown config key nonsense \(known keys: seed,"),
            ({"optim": {"epochs": "ten"}}, r"config optim\.epochs must be a whole number, not 'ten'"),
            ({"optim": {"lr": True}}, r"config optim\.lr must be a number, not True"),
            ({"model": {"pretrained": "yes"}}, r"config model\.pretrained must be true or false"),
            ({"optim": 3}, r"config section 'optim' must be a mapping, not 3"),
            ({"augment": {"gamma": 0.8}}, r"config augment\.gamma must be a list, not 0\.8"),
        ],
    )  # fmt: skip
    def test_bad_values_name_the_key(self, data: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(data)

    def test_ints_are_accepted_where_floats_are_expected(self) -> None:
        assert config_from_dict({"optim": {"lr": 1}}).optim.lr == 1.0

    def test_partial_file_keeps_the_other_defaults(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("optim:\n  epochs: 3\nseed: 5\n", encoding="utf-8")
        config = load_config_file(path)
        assert (config.optim.epochs, config.seed) == (3, 5)
        assert config.optim.lr == TrainConfig().optim.lr

    def test_file_errors_carry_the_path(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("optim: {epochs: [\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"c\.yaml: config file is not valid YAML at line"):
            load_config_file(path)
        with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
            load_config_file(tmp_path / "missing.yaml")

    def test_yaml_tags_that_build_objects_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("seed: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_config_file(path)


class TestOverrides:
    def test_set_option_parses_yaml_values(self) -> None:
        config = apply_overrides(
            TrainConfig(),
            [
                parse_set_option("optim.weight_decay=0.05"),
                parse_set_option("augment.hflip_prob=0.5"),
                parse_set_option("data.labels=[a, b]"),
                parse_set_option("seed=3"),
            ],
        )
        assert config.optim.weight_decay == 0.05
        assert config.augment.hflip_prob == 0.5
        assert config.data.labels == ["a", "b"]
        assert config.seed == 3

    @pytest.mark.parametrize("text", ["optim.epochs", "a.b.c=1"])
    def test_malformed_set_option(self, text: str) -> None:
        with pytest.raises(ConfigError, match=r"--set"):
            parse_set_option(text)


class TestValidation:
    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"optim": {"epochs": 0}}, r"config optim\.epochs 0 must be in 1\.\.10000"),
            ({"optim": {"lr": 2.0}}, r"config optim\.lr 2\.0 must be in \(0, 1\)"),
            ({"device": "tpu"}, r"config device 'tpu' is unknown \(choose one of: auto, cpu, cuda, mps\)"),
            ({"model": {"arch": "vgg"}}, r"unknown architecture 'vgg'"),
            ({"data": {"folds": 1000}}, r"config data\.folds 1000 must be 1 \(off\) or 2\.\.20"),
            ({"data": {"val_fraction": 0.6, "test_fraction": 0.4}}, r"leaves too little for training"),
            ({"preprocessing": {"image_size": 8}}, r"preprocessing image_size 8 must be an integer in 32\.\.2048"),
            ({"thresholds": {"rule": "f1"}}, r"config thresholds\.rule 'f1' is unknown"),
            ({"model": {"pretrained": False, "weights": "w.pth"}}, r"model\.weights 'w\.pth' is set but model\.pretrained is false"),
            ({"model": {"arch": "resnet18"}}, r"no pretrained weights are bundled for resnet18 and nothing is downloaded \(give model\.weights"),
            ({"augment": {"gamma": [1.2, 0.8]}}, r"augment\.gamma \[1\.2, 0\.8\] must be \[low, high\]"),
        ],
    )  # fmt: skip
    def test_out_of_range_values(self, data: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(data).validate()

    def test_training_hash_ignores_what_does_not_change_the_weights(self) -> None:
        base = TrainConfig()
        same = config_from_dict(
            {
                "device": "cpu",
                "data": {"workers": 2},
                "output": {"name": "x"},
                "optim": {"epochs": 30},
            }
        )
        assert same.training_hash() == base.training_hash()
        assert config_from_dict({"optim": {"lr": 0.01}}).training_hash() != base.training_hash()
        assert config_from_dict({"seed": 1}).training_hash() != base.training_hash()
