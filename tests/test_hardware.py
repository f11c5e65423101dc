"""What a model runs with on its devices (model/hardware.py): the kernel set, the training attention and the
compute dtype that 'auto' picks per device kind, and the one line an impossible choice gets."""

import dataclasses

import jax
import pytest

from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.model import hardware, kernels
from llm2llm_jax.model.config import tiny_config


@dataclasses.dataclass
class FakeDevice:
    platform: str


def test_auto_picks_cpu_on_cpus_and_xla_elsewhere():
    assert hardware.resolve_kernels("auto", jax.devices("cpu")) == "cpu"
    assert hardware.resolve_kernels("auto", [FakeDevice("gpu")] * 2) == "xla"
    assert hardware.resolve_kernels("auto", [FakeDevice("tpu")] * 4) == "xla"
    assert hardware.resolve_kernels("cpu", [FakeDevice("gpu")]) == "cpu"  # an explicit choice is kept
    assert hardware.resolve_kernels("xla", jax.devices("cpu")) == "xla"
    assert hardware.resolve_kernels("auto", [FakeDevice("gpu")], fused_attention="cudnn") == "xla"


@dataclasses.dataclass
class FakeGpu:
    device_kind: str = "NVIDIA H100 80GB HBM3"
    compute_capability: str = "9.0"
    platform: str = "gpu"


def test_auto_attention_is_cudnn_where_cudnn_takes_the_model_and_blocked_on_other_gpus():
    h100, a100, amd = FakeGpu(), FakeGpu("NVIDIA A100-SXM4-80GB", "8.0"), FakeGpu("AMD Instinct MI300X", "")
    llama = tiny_config(dtype="bfloat16", head_dim=64)
    assert llama.with_kernels_for([h100] * 2).fused_attention == "cudnn"
    assert llama.with_kernels_for([a100]).fused_attention == "cudnn"
    assert llama.with_kernels_for([amd]).fused_attention == "blocked"
    assert llama.with_kernels_for([h100, a100]).fused_attention == "cudnn"
    assert tiny_config(dtype="float32").with_kernels_for([h100]).fused_attention == "blocked"
    # cuDNN's flash attention takes head dims up to 128, and up to 256 from Hopper on
    wide = tiny_config(dtype="bfloat16", hidden_size=1024, num_attention_heads=4, num_key_value_heads=2)
    assert wide.head_dim == 256
    assert wide.with_kernels_for([h100]).fused_attention == "cudnn"
    assert wide.with_kernels_for([a100]).fused_attention == "blocked"
    assert wide.with_kernels_for([h100, a100]).fused_attention == "blocked"
    assert tiny_config(dtype="bfloat16", head_dim=20).with_kernels_for([h100]).fused_attention == "blocked"
    # a scanned stack of full and sliding layers picks each layer's window inside the scan: no lengths
    mixed = dict(dtype="bfloat16", sliding_window=8, layer_types=("sliding_attention", "full_attention"))
    assert tiny_config(**mixed, scan_layers=True).with_kernels_for([h100]).fused_attention == "blocked"
    assert tiny_config(**mixed, scan_layers=False).with_kernels_for([h100]).fused_attention == "cudnn"
    # an explicit choice is kept; TPUs and CPUs keep the einsums and the cpu kernels' own attention
    assert llama.replace(fused_attention="blocked").with_kernels_for([h100]).fused_attention == "blocked"
    assert llama.with_kernels_for([FakeDevice("tpu")] * 4) == llama.replace(
        kernels="xla", fused_attention="off"
    )
    assert llama.with_kernels_for(jax.devices("cpu")) == llama.replace(kernels="cpu", fused_attention="off")
    on_cpu_xla = llama.replace(kernels="xla").with_kernels_for(jax.devices("cpu"))
    assert (on_cpu_xla.kernels, on_cpu_xla.fused_attention) == ("xla", "off")
    with pytest.raises(hardware.KernelError, match="must be resolved"):
        kernels.for_config(llama.replace(kernels="xla"))


def test_kernel_choices_that_cannot_run_say_what_to_do():
    with pytest.raises(ConfigError, match=r"config key model.kernels\) must be one of"):
        tiny_config(kernels="fast")
    with pytest.raises(ConfigError, match="needs a bfloat16 or float16 compute dtype"):
        tiny_config(fused_attention="cudnn")
    with pytest.raises(ConfigError, match="needs the xla kernels.*model.kernels=xla"):
        tiny_config(fused_attention="xla").with_kernels_for(jax.devices("cpu"))
    with pytest.raises(ConfigError, match="runs on NVIDIA GPUs only"):
        tiny_config(kernels="xla", dtype="bfloat16", fused_attention="cudnn").with_kernels_for(
            jax.devices("cpu")
        )
    with pytest.raises(hardware.KernelError, match="must be resolved"):
        kernels.for_config(tiny_config())


def test_auto_dtype_is_bf16_where_the_hardware_multiplies_it(tmp_path, monkeypatch):
    import types

    amd = tmp_path / "amd"
    amd.write_text(
        "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n"
    )
    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert not hardware.cpu_has_native_bf16(str(amd))
    assert hardware.cpu_has_native_bf16(str(intel)) and hardware.cpu_has_native_bf16(str(arm))
    assert not hardware.cpu_has_native_bf16(str(tmp_path / "missing"))

    cpu, gpu = types.SimpleNamespace(platform="cpu"), types.SimpleNamespace(platform="gpu")
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert hardware.resolve_dtype("auto", [cpu, cpu]) == "float32"
    assert hardware.resolve_dtype("auto", [gpu]) == "bfloat16"
    assert hardware.resolve_dtype("bfloat16", [cpu]) == "bfloat16"  # an explicit choice stands
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert hardware.resolve_dtype("auto", [cpu]) == "bfloat16"
    with pytest.raises(
        hardware.KernelError, match=r"model.dtype='fp8': choose one of \('auto', 'bfloat16', 'float32'\)"
    ):
        hardware.resolve_dtype("fp8", [cpu])
