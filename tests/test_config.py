import pytest

from helpers.config import (ArtifactPaths, MODEL_SIZES, PretrainConfig, apply_env_overrides, resolve_max_len,
                            resolve_model_size)
from helpers.errors import ConfigError


def test_model_sizes_are_consistent():
    for size in MODEL_SIZES.values():
        assert size.hidden_size % size.num_attention_heads == 0
        assert 0 < size.accuracy_floor < 1
        assert size.pretrain.seq_len <= 512 and size.pretrain.steps > 0
    base = MODEL_SIZES["base"]
    assert (base.num_hidden_layers, base.hidden_size, base.head_size) == (12, 768, 64)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, "steps must be 0 or more"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"seq_len": 4}, "seq_len must be between 8 and 512"),
    ({"mask_rate": 1.5}, "mask_rate must be between 0 and 1"),
    ({"lr": 0}, "lr must be positive"),
])
def test_pretrain_settings_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PretrainConfig(**kwargs)


def test_auto_model_size_follows_hardware(monkeypatch):
    import helpers.config as config

    monkeypatch.setattr(config, "has_cuda", lambda: False)
    assert resolve_model_size("auto").name == "small"
    monkeypatch.setattr(config, "has_cuda", lambda: True)
    assert resolve_model_size(" AUTO ").name == "base"


def test_unknown_model_size_names_the_choices():
    with pytest.raises(ConfigError, match=r"Unknown model size 'huge'.*tiny"):
        resolve_model_size("huge")


def test_env_overrides_are_typed_and_reported(capsys):
    params = dict(model_size="auto", epochs=3, lr=0.1, overwrite=False, data_dir=None, max_len=None)
    env = {"SERIES_MODEL_SIZE": "tiny", "SERIES_EPOCHS": "1", "SERIES_LR": "2e-3", "SERIES_OVERWRITE": "yes",
           "SERIES_MAX_LEN": "64", "SERIES_DATA_DIR": "none", "UNRELATED": "x"}
    out = apply_env_overrides(params, env)
    assert out == dict(model_size="tiny", epochs=1, lr=2e-3, overwrite=True, data_dir=None, max_len=64)
    assert params["model_size"] == "auto"  # the input is not modified
    assert "model_size = 'tiny' (from SERIES_MODEL_SIZE)" in capsys.readouterr().out


def test_env_override_with_wrong_type_is_explained():
    with pytest.raises(ConfigError, match="SERIES_EPOCHS='many' is not a valid int"):
        apply_env_overrides({"epochs": 3}, {"SERIES_EPOCHS": "many"})


def test_max_len_bounds():
    assert resolve_max_len(None, MODEL_SIZES["tiny"]) == MODEL_SIZES["tiny"].max_len
    assert resolve_max_len(200, MODEL_SIZES["tiny"]) == 200
    with pytest.raises(ConfigError, match="between 3 and 512"):
        resolve_max_len(1000, MODEL_SIZES["tiny"])


def test_artifact_paths(tmp_path):
    paths = ArtifactPaths.at(tmp_path / "a").ensure()
    assert paths.root.is_dir()
    assert paths.checkpoint == paths.root / "checkpoint" and paths.onnx.parent == paths.root
    assert paths.pretrain == paths.root / "pretrain"
