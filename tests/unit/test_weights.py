"""Loading and saving component folders: round trips, shards, dtype, and clear errors on bad input."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.weights import CheckpointError, ConfigError
from qwenimage.weights.load import INDEX_NAME, WEIGHTS_NAME, parse_size
from tests.helpers import perturb_


@pytest.fixture
def saved(tmp_path):
    model = perturb_(QwenImageMMDiT(mmdit_preset("tiny")))
    model.save_pretrained(tmp_path)
    return model, tmp_path


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_single_file(saved):
    model, folder = saved
    config = json.loads((folder / "config.json").read_text())
    assert config["_class_name"] == "QwenImageTransformer2DModel" and config["axes_dims_rope"] == [4, 6, 6]
    loaded = QwenImageMMDiT.from_pretrained(folder)
    assert_same_weights(model, loaded)
    assert not any(p.is_meta for p in loaded.parameters())


def test_round_trip_sharded_then_single_removes_stale_shards(saved):
    model, folder = saved
    model.save_pretrained(folder, max_shard_size="40KB")
    shards = sorted(folder.glob("diffusion_pytorch_model-*.safetensors"))
    assert len(shards) > 1 and (folder / INDEX_NAME).is_file() and not (folder / WEIGHTS_NAME).exists()
    assert_same_weights(model, QwenImageMMDiT.from_pretrained(folder))
    model.save_pretrained(folder)
    assert not list(folder.glob("diffusion_pytorch_model-*")) and not (folder / INDEX_NAME).exists()


def test_dtype_option_casts_floating_weights(saved):
    _, folder = saved
    loaded = QwenImageMMDiT.from_pretrained(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


def test_truncated_file_names_the_file(saved):
    _, folder = saved
    path = folder / WEIGHTS_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=WEIGHTS_NAME):
        QwenImageMMDiT.from_pretrained(folder)


def test_garbage_file_is_a_clear_error(saved):
    _, folder = saved
    (folder / WEIGHTS_NAME).write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        QwenImageMMDiT.from_pretrained(folder)


def test_missing_and_unexpected_keys_are_listed(saved):
    _, folder = saved
    tensors = load_file(folder / WEIGHTS_NAME)
    del tensors["proj_out.bias"]
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, folder / WEIGHTS_NAME)
    with pytest.raises(CheckpointError) as info:
        QwenImageMMDiT.from_pretrained(folder)
    assert "missing keys (1): proj_out.bias" in str(info.value)
    assert "unexpected keys (1): extra.weight" in str(info.value)


def test_shape_mismatch_names_key_and_shapes(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["joint_attention_dim"] = 48
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"key 'txt_in.weight' has shape \[64, 32\], the model expects \[64, 48\]"):
        QwenImageMMDiT.from_pretrained(folder)


@pytest.mark.parametrize("change,message", [
    ({"num_blocks": 3}, r"unknown keys for MMDiTConfig: \['num_blocks'\]"),
    ({"axes_dims_rope": [4, 4, 4]}, "sums to 12, expected attention_head_dim 16"),
    ({"_class_name": "AutoencoderKLQwenImage"}, "expected 'QwenImageTransformer2DModel'"),
])
def test_wrong_config_is_a_clear_error(saved, change, message):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config.update(change)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message) as info:
        QwenImageMMDiT.from_pretrained(folder)
    assert "config.json" in str(info.value)


def test_missing_files(tmp_path, saved):
    _, folder = saved
    with pytest.raises(ConfigError, match="config.json not found"):
        QwenImageMMDiT.from_pretrained(tmp_path / "nowhere")
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="no diffusion_pytorch_model.safetensors"):
        QwenImageMMDiT.from_pretrained(folder)


def test_index_that_lists_a_missing_shard(saved):
    model, folder = saved
    model.save_pretrained(folder, max_shard_size="40KB")
    next(iter(sorted(folder.glob("diffusion_pytorch_model-*.safetensors")))).unlink()
    with pytest.raises(CheckpointError, match="shard files listed in the index are missing"):
        QwenImageMMDiT.from_pretrained(folder)


def test_parse_size():
    assert parse_size("5GB") == 5 * 10**9 and parse_size("2MiB") == 2 * 2**20 and parse_size(7) == 7
    with pytest.raises(ValueError, match="cannot parse a size from 'lots'"):
        parse_size("lots")
