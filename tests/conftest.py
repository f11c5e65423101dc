"""Shared fixtures: tiny random HF Llama checkpoints and the real SmolLM2-135M-Instruct (GGUF)."""

import os
import warnings

# Simulate an 8-device pod on the CPU for the sharding tests (must happen before jax is imported).
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
# gcsfs decides at import whether to use its extended filesystem, whose bucket probe speaks gRPC over TLS and
# so cannot reach the tests' local GCS emulator (tests/gcs_emulator.py): the plain one, whenever gcsfs is
# imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import numpy as np
import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)


def pytest_addoption(parser):
    parser.addoption(
        "--run-gpu-dry-run",
        action="store_true",
        help="also run the GPU check's CPU dry run (about 3 minutes of benchmark-harness code)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "multi_device: needs the 8-device simulated CPU pod (skipped on a GPU)"
    )
    config.addinivalue_line(
        "markers",
        "slow: loads the real SmolLM2 weights, starts subprocesses, executes the "
        "notebook, or compiles model steps for more than ~5 s on 2 cores; "
        "`-m 'not slow'` is the quick tier (under 3 minutes), CI runs everything",
    )
    config.addinivalue_line(
        "markers",
        "gpu_dry_run: the GPU check's CPU dry run; runs with --run-gpu-dry-run "
        "(benchmarks/accelerator_check.sh --prepare runs it before a GPU session)",
    )


def pytest_collection_modifyitems(config, items):
    """Tests that use the real SmolLM2 are slow; the GPU check's dry run needs --run-gpu-dry-run. On a backend
    with fewer than 8 devices (one GPU), the mesh tests cannot build their meshes."""
    import jax

    for item in items:
        if {"smollm2", "smollm2_torch"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--run-gpu-dry-run"):
        skip_dry_run = pytest.mark.skip(reason="the GPU check's dry run: run with --run-gpu-dry-run")
        for item in items:
            if "gpu_dry_run" in item.keywords:
                item.add_marker(skip_dry_run)
    if len(jax.devices()) >= 8:
        return
    skip = pytest.mark.skip(reason=f"needs 8 devices; {jax.default_backend()} has {len(jax.devices())}")
    for item in items:
        if "multi_device" in item.keywords:
            item.add_marker(skip)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# JAX's persistent compilation cache that the harness processes share (tests/loop_harness.py reads it from
# LLM2LLM_TEST_JIT_CACHE): each run after the first loads the programs the earlier ones compiled.
TEST_JIT_CACHE = os.path.join(ROOT, ".cache", "test-jit-cache")


def on_gpu() -> bool:
    """The tests run on an NVIDIA GPU (benchmarks/accelerator_check.py): the cuDNN variants apply."""
    import jax

    return jax.default_backend() == "gpu"


def make_hf_llama(tmp_dir, seed=0, **overrides):
    """Save a tiny random transformers LlamaForCausalLM to `tmp_dir`; returns (dir, torch model)."""
    return make_hf_model(tmp_dir, "llama", seed, **overrides)


# family -> (transformers config class, model class) names
HF_CLASSES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
}


def make_hf_model(tmp_dir, family, seed=0, **overrides):
    """Save a tiny random transformers model of `family` to `tmp_dir`; returns (dir, torch model). Norm
    weights and biases are random too, so that every one of them is exercised."""
    import torch
    import transformers

    config_cls, model_cls = (getattr(transformers, n) for n in HF_CLASSES[family])
    kwargs = dict(
        vocab_size=160,
        hidden_size=64,
        intermediate_size=112,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.15,
        rms_norm_eps=1e-5,
    )
    kwargs.update(overrides)
    torch.manual_seed(seed)
    config = config_cls(**kwargs)
    config._attn_implementation = "eager"  # the plain softmax reference, sliding windows included
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # Gemma scales by (1 + weight): centre its weights on 0
                p.uniform_(-0.5, 0.5) if family == "gemma3" else p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                p.uniform_(-0.5, 0.5)
    path = os.path.join(str(tmp_dir), f"hf_{family}")
    model.save_pretrained(path)
    return path, model


def torch_logits(model, ids, mask):
    import torch

    with torch.no_grad():
        return model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.float().numpy()


def random_batch(vocab, batch=3, length=17, seed=0):
    rs = np.random.RandomState(seed)
    ids = rs.randint(3, vocab, (batch, length)).astype(np.int64)
    mask = np.ones((batch, length), np.int64)
    for row in range(1, batch):  # left padding of different widths
        mask[row, : 2 * row] = 0
        ids[row, : 2 * row] = 0
    return ids, mask


@pytest.fixture(scope="session")
def smollm2():
    """(cfg, params, tokenizer, gguf_path) for the real SmolLM2-135M-Instruct."""
    from llm2llm_jax.common import assets
    from llm2llm_jax.model.loading import load_smollm2

    cfg, params, tok = load_smollm2(quiet=True, progress=False)
    return cfg, params, tok, assets.smollm2_gguf_path(quiet=True)


def hf_model_from_gguf(path: str, **kwargs):
    """transformers' own load of a GGUF (its config, dequantization and weight names), in eval mode, f32
    unless `kwargs` say otherwise.

    gguf's reader is swapped for `MappedGGUF` while it loads: the same reader over a plain array of the file
    (test_gguf.py checks that it reads the same fields and tensors), whose parse is about three times faster.
    transformers parses a file twice per load, which made the Gemma 3 fixture the suite's slowest setup."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    from llm2llm_jax.model.gguf_reader import MappedGGUF

    kwargs.setdefault("dtype", torch.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf, "GGUFReader", MappedGGUF)
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(path), gguf_file=os.path.basename(path), **kwargs
        )
    return model.eval()


@pytest.fixture(scope="session")
def smollm2_torch(smollm2):
    """transformers' own load of the same GGUF, in f32."""
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    return hf_model_from_gguf(smollm2[3])


REAL_PROMPTS = [
    "What is the capital of France?",
    "Question: How far is it from Denver to Aspen?\nType:",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "The movie was a triumph of style over substance. Sentiment:",
    "def fibonacci(n):",
    "Who wrote the novel Pride and Prejudice?",
    "Translate to French: good morning",
    "List three primary colors:",
]
