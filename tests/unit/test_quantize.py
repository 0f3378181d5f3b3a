"""torchao quantisation of the transformer: each mode against fp32, quantised checkpoints, errors, memory."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from qwenimage.devices import cpu_has_int8_dot
from qwenimage.model import MMDiTConfig, QwenImageMMDiT, mmdit_preset
from qwenimage.weights.quantize import (QUANTIZATION_NAME, check_quantize, is_quantized_weight, model_bytes,
                                        quantize_model)

pytest.importorskip("torchao")

MEDIUM = MMDiTConfig(num_layers=4, num_attention_heads=8, attention_head_dim=64, joint_attention_dim=512,
                     axes_dims_rope=(8, 28, 28))  # benchmarks/common.py medium_config


def random_model(config: MMDiTConfig, seed: int = 0) -> QwenImageMMDiT:
    """Every weight random (the real init zeroes the modulation and output layers, which would hide errors)."""
    torch.manual_seed(seed)
    model = QwenImageMMDiT(config).eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return model


def forward(model: QwenImageMMDiT) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    config = model.config
    x = torch.randn(1, 16, config.in_channels, generator=generator)  # [B, S_img, C_in]
    text = torch.randn(1, 8, config.joint_attention_dim, generator=generator)  # [B, S_txt, D_txt]
    with torch.inference_mode():
        return model(x, text, torch.tensor([0.5]), [(1, 4, 4)])  # [B, S_img, C_out]


def psnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    mse = (reference - other).pow(2).mean()
    return float(10 * torch.log10(reference.pow(2).max() / mse))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_fp32")
    random_model(mmdit_preset("tiny")).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("mode", ["int8", "int8-dynamic"])
def test_quantised_while_loading_is_close_to_fp32(tiny_folder, mode):
    reference = forward(QwenImageMMDiT.from_pretrained(tiny_folder))
    model = QwenImageMMDiT.from_pretrained(tiny_folder, quantize=mode)
    assert model.quantization == mode
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert is_quantized_weight(module.weight) == name.startswith("transformer_blocks."), name
    assert psnr(reference, forward(model)) > 30


@pytest.mark.parametrize("mode", ["int8", "int8-dynamic"])
def test_quantised_checkpoint_round_trip(tiny_folder, tmp_path, mode):
    model = QwenImageMMDiT.from_pretrained(tiny_folder, quantize=mode)
    model.save_pretrained(tmp_path, max_shard_size="40KB")  # several shards: no module is split across files
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    assert json.loads((tmp_path / QUANTIZATION_NAME).read_text())["mode"] == mode
    loaded = QwenImageMMDiT.from_pretrained(tmp_path)
    assert loaded.quantization == mode
    assert torch.equal(forward(model), forward(loaded))
    assert model_bytes(loaded) == model_bytes(model)
    other = "int8" if mode == "int8-dynamic" else "int8-dynamic"
    with pytest.raises(ValueError, match=f"'{mode}'-quantised checkpoint; it cannot be loaded as '{other}'"):
        QwenImageMMDiT.from_pretrained(tmp_path, quantize=other)


def test_saving_full_precision_over_a_quantised_folder_drops_its_marker(tiny_folder, tmp_path):
    QwenImageMMDiT.from_pretrained(tiny_folder, quantize="int8").save_pretrained(tmp_path)
    QwenImageMMDiT.from_pretrained(tiny_folder).save_pretrained(tmp_path)
    assert not (tmp_path / QUANTIZATION_NAME).exists()
    assert not is_quantized_weight(QwenImageMMDiT.from_pretrained(tmp_path).transformer_blocks[0].attn.to_q.weight)


def test_unknown_mode_and_fp8_on_cpu_are_one_line_errors(tiny_folder):
    with pytest.raises(ValueError, match=r"^unknown quantization 'int4'; choose one of int8, int8-dynamic, fp8$"):
        QwenImageMMDiT.from_pretrained(tiny_folder, quantize="int4")
    with pytest.raises(ValueError, match="'fp8' needs a CUDA GPU") as err:
        check_quantize("fp8", torch.device("cpu"))
    assert "\n" not in str(err.value)


def test_load_pipeline_checks_the_mode_before_loading(tiny_pipeline_dir):
    from qwenimage.pipelines.loading import load_pipeline

    with pytest.raises(ValueError, match="unknown quantization 'int3'"):
        load_pipeline(tiny_pipeline_dir, quantize="int3")


def test_int8_weights_take_under_three_tenths_of_fp32_at_the_medium_config():
    model = random_model(MEDIUM)
    fp32 = model_bytes(model)
    assert model_bytes(quantize_model(model, "int8")) <= 0.3 * fp32


def test_peak_memory_while_quantising_stays_below_the_full_precision_size(tmp_path):
    """A 170 MB fp32 checkpoint loads as int8 (~45 MB) without ever holding the whole fp32 model."""
    config = MMDiTConfig(num_layers=2, num_attention_heads=12, attention_head_dim=64, joint_attention_dim=64,
                         axes_dims_rope=(8, 28, 28))
    model = QwenImageMMDiT(config)  # the default init: the values do not matter here
    fp32 = model_bytes(model)
    model.save_pretrained(tmp_path)
    del model
    script = textwrap.dedent(f"""
        import psutil, torch
        from qwenimage.model import QwenImageMMDiT
        import torchao.quantization
        before = psutil.Process().memory_info().rss
        open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
        QwenImageMMDiT.from_pretrained({str(tmp_path)!r}, quantize="int8")
        print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024 - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    growth = int(result.stdout.split()[-1])
    assert growth < fp32, f"peak RSS grew {growth / 2**20:.0f} MiB loading a {fp32 / 2**20:.0f} MiB fp32 model"


def test_generate_verbose_reports_time_to_first_image_and_peak_rss(tiny_pipeline_dir, tmp_path, capsys):
    from qwenimage.cli.main import main

    code = main(["generate", "--model", str(tiny_pipeline_dir), "--prompt", "a door", "--width", "32", "--height",
                 "32", "--steps", "1", "--quantize", "int8", "--verbose", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0
    line = next(line for line in err.splitlines() if line.startswith("time to first image:"))
    seconds, rss = line.removeprefix("time to first image: ").split(" s; peak RSS: ")
    assert float(seconds) > 0 and int(rss.removesuffix(" MiB")) > 0


def test_generate_without_verbose_prints_no_report(tiny_pipeline_dir, tmp_path, capsys):
    from qwenimage.cli.main import main

    assert main(["generate", "--model", str(tiny_pipeline_dir), "--prompt", "a door", "--width", "32", "--height",
                 "32", "--steps", "1", "--out", str(tmp_path)]) == 0
    assert "time to first image" not in capsys.readouterr().err


class RecordedOps(TorchDispatchMode):
    """The names of the aten ops that run inside it."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_dynamic_weights_run_our_int8_gemm_and_agree_with_torchao(dtype):
    """The CPU kernel (one torch._int_mm per linear where the CPU has int8 dot products, the same products as an
    fp32 GEMM where not) against torchao's own eager path on the same weights."""
    from qwenimage.model.int8_gemm import int8_dynamic_linear, int8_dynamic_parts
    from qwenimage.model.linear import Linear, linear

    torch.manual_seed(0)
    layer = Linear(96, 40).to(dtype)
    torch.nn.init.normal_(layer.weight, std=0.1)
    torch.nn.init.normal_(layer.bias, std=0.1)
    x = torch.randn(2, 7, 96).to(dtype)  # 14 tokens, one of them all zeros (scale clamped, not 0/0)
    x[1, 3] = 0
    with torch.inference_mode():
        reference = layer(x).float()
        quantize_model(torch.nn.ModuleDict({"transformer_blocks": torch.nn.ModuleList([layer])}), "int8-dynamic")
        assert int8_dynamic_parts(layer.weight) is not None
        with RecordedOps() as ops:
            out = layer(x)
        torchao = torch.nn.functional.linear(x, layer.weight, layer.bias).float()  # torchao's dispatch
        fused = linear(x, layer.weight, layer.bias, gelu_tanh=True)
    assert ("_int_mm" in ops.names) == cpu_has_int8_dot() and out.dtype == dtype and out.shape == (2, 7, 40)
    assert torch.isfinite(out).all()
    assert psnr(reference, out.float()) > 35 and psnr(torchao, out.float()) > 40
    torch.testing.assert_close(fused, torch.nn.functional.gelu(out, approximate="tanh"))
    qdata, scale = int8_dynamic_parts(layer.weight)
    one = int8_dynamic_linear(x[0, :1], qdata, scale, None)  # a single token: M = 1
    torch.testing.assert_close(one.float(), out[0, :1].float() - layer.bias.float(), atol=2e-2, rtol=2e-2)


def test_weight_only_and_plain_weights_stay_off_the_int8_kernel():
    from qwenimage.model.int8_gemm import int8_dynamic_parts

    layer = torch.nn.Linear(32, 16)
    assert int8_dynamic_parts(layer.weight) is None
    quantize_model(torch.nn.ModuleDict({"transformer_blocks": torch.nn.ModuleList([layer])}), "int8")
    assert is_quantized_weight(layer.weight) and int8_dynamic_parts(layer.weight) is None


def test_without_int8_dot_products_int8_dynamic_runs_the_same_maths_in_fp32(monkeypatch):
    """Without VNNI / AMX (torch's int8 GEMM is scalar code there, 15x slower than fp32) the linear runs the fp32
    GEMM of the dequantised operands: no int8 GEMM, and the int8 kernel's result to fp32 rounding."""
    from qwenimage.model import linear as linear_module
    from qwenimage.model.int8_gemm import int8_dynamic_linear, int8_dynamic_parts

    torch.manual_seed(0)
    layer = linear_module.Linear(96, 40)
    torch.nn.init.normal_(layer.weight, std=0.1)
    x = torch.randn(3, 5, 96)
    x[2, 4] = 0  # an all-zero token: scale clamped, not 0/0
    with torch.inference_mode():
        quantize_model(torch.nn.ModuleDict({"transformer_blocks": torch.nn.ModuleList([layer])}), "int8-dynamic")
        kernel = int8_dynamic_linear(x, *int8_dynamic_parts(layer.weight), layer.bias)  # torch._int_mm: exact ints
        monkeypatch.setattr(linear_module, "cpu_has_int8_dot", lambda: False)
        with RecordedOps() as ops:
            out = layer(x)
        fused = linear_module.linear(x.bfloat16(), layer.weight, layer.bias, gelu_tanh=True)
    assert "_int_mm" not in ops.names and out.dtype == torch.float32 and out.shape == (3, 5, 40)
    torch.testing.assert_close(out, kernel, rtol=1e-5, atol=1e-5)
    assert fused.dtype == torch.bfloat16
    torch.testing.assert_close(fused.float(), torch.nn.functional.gelu(kernel, approximate="tanh"), rtol=2e-2,
                               atol=2e-2)


@pytest.mark.parametrize("int8_dot", [True, False])
def test_int8_dynamic_on_a_cpu_without_int8_dot_products_says_it_is_not_faster(monkeypatch, caplog, int8_dot):
    from qwenimage.weights import quantize as quantize_module

    monkeypatch.setattr(quantize_module, "cpu_has_int8_dot", lambda: int8_dot)
    with caplog.at_level("WARNING", logger="qwenimage.weights.quantize"):
        quantize_module.check_quantize("int8-dynamic", torch.device("cpu"))
        quantize_module.check_quantize("int8", torch.device("cpu"))
    warned = [r.getMessage() for r in caplog.records if "int8 dot-product" in r.getMessage()]
    assert len(warned) == (0 if int8_dot else 1)
