"""Config: YAML defaults, --key value overrides for every key, one-line errors."""
import pytest

from clmr_lib.config import DEFAULT_CONFIG, load_config, load_yaml, parse_config
from clmr_lib.errors import UserError


def test_defaults_are_clmrs():
    config = load_config()
    assert config["batch_size"] == 48 and config["projection_dim"] == 64
    assert config["learning_rate"] == pytest.approx(3e-4) and config["temperature"] == 0.5
    assert config["audio_length"] == 59049 and config["sample_rate"] == 22050
    assert config["transforms_pitch"] == 0.6 and config["finetuner_batch_size"] == 256


def test_every_key_overridable_with_its_type():
    config = parse_config(["--batch_size", "8", "--learning_rate", "0.1", "--dataset", "audio",
                           "--pad_short", "false", "--sample_cnn_strides", "[3, 3]"], "test")
    assert config["batch_size"] == 8 and isinstance(config["batch_size"], int)
    assert config["learning_rate"] == 0.1 and config["dataset"] == "audio"
    assert config["pad_short"] is False and config["sample_cnn_strides"] == [3, 3]
    assert set(load_yaml(DEFAULT_CONFIG)) <= set(config)


def test_config_file_overrides_then_flags(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("batch_size: 16\nseed: 7\n")
    config = parse_config(["--config", str(extra), "--seed", "9"], "test")
    assert config["batch_size"] == 16 and config["seed"] == 9


def test_bad_flag_value_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(["--batch_size", "many"], "test")
    assert exc.value.code == 2
    assert "batch_size" in capsys.readouterr().err


def test_unknown_key_in_config_file(tmp_path):
    extra = tmp_path / "bad.yaml"
    extra.write_text("batch_sise: 16\n")
    with pytest.raises(UserError, match="batch_sise"):
        load_config([extra])


def test_missing_config_file():
    with pytest.raises(UserError, match="does not exist"):
        load_config(["/nonexistent.yaml"])
