"""Greedy decoding throughput: llm2llm_jax (jitted prefill + while_loop, KV cache) with each kernel set vs
transformers `generate`.

SmolLM2-135M-Instruct: its real weights (the GGUF) with real prompts, or with `--weights random` an
architecture (`--model`, default SmolLM2-135M's) with random weights (transformers' own initialisation,
imported into ours: both sides run the same weights) and random prompts of the same lengths. Exactly --new
tokens per row (EOS disabled on both sides so the work is identical), left-padded batches, per precision and
batch one row per kernel set (side by side in this process) and transformers' row. bf16 rows run
bf16 weights on both sides. Each side prepares its weights once, outside the timing: transformers'
`.to(dtype)` and llm2llm_jax's `inference_weights` (the cast and the untied head), as the evaluation
loop does. Layers unrolled, as configs/default.py runs them.

On CPU (default: f32 and bf16, batches 1 and 32, kernels cpu and xla) each batch ends with two limits
for this machine: a ceiling, the same-shaped matmuls alone chained in one jit
(`dense_ceiling_seconds`), and a bound, the matmul FLOPs any decoder must do (`decode_matmul_flops`)
at the faster of JAX's and PyTorch's matmul rate measured in this run. On a GPU (default: bf16,
batches 1, 32 and 128, kernels xla) transformers runs on CUDA with SDPA attention.

  python benchmarks/decode.py [--new 64 --batches 1,32 --precision f32,bf16 --kernels cpu,xla --repeats 3
                               --weights real --json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # a GPU's memory is shared with PyTorch here

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    MODEL_SHAPES,
    device_matmul_rate,
    matmul_params,
    median_seconds,
    on_gpu,
    torch_device,
    torch_matmul_rate,
    torch_sync,
)

from llm2llm_jax.common.allocator import malloc_setting, reexec_with_reusing_malloc
from llm2llm_jax.student.decode import generate, inference_weights, left_pad

PROMPTS = [
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "Question: How far is it from Denver to Aspen?\nType:",
    "Write a haiku about the sea.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many?",
    "List three primary colors:",
    "Who wrote Pride and Prejudice?",
    "Translate to French: good morning",
]
PROMPT_LENGTHS = [7, 6, 15, 8, 29, 5, 7, 7]  # SmolLM2's token counts of PROMPTS, for random prompts
PAD_ID = 2  # SmolLM2's


def dense_ceiling_seconds(cfg, batch: int, steps: int = 8) -> float:
    """Seconds per decoded token of the model's matmuls alone (7 projections per layer and the
    vocabulary head, weights of the model's shapes in its compute dtype, no attention, norms or
    cache), chained inside one jit so they run back to back as in decoding: a floor that no decoder
    built on XLA:CPU's matmuls can go below on this machine."""
    h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    shapes = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]
    keys = iter(jax.random.split(jax.random.PRNGKey(0), L * len(shapes) + 2))
    dtype = cfg.jnp_dtype
    layers = [[(jax.random.normal(next(keys), s) * 0.02).astype(dtype) for s in shapes] for _ in range(L)]
    head = (jax.random.normal(next(keys), (h, cfg.vocab_size)) * 0.02).astype(dtype)

    mm = functools.partial(jnp.dot, preferred_element_type=jnp.float32)

    def token(x):
        for wq, wk, wv, wo, wg, wu, wd in layers:
            attn = mm(x, wq) + mm(x, wk).sum() + mm(x, wv).sum()  # k, v feed nothing else here
            x = x + mm(attn.astype(dtype), wo).astype(dtype)
            x = x + mm((jax.nn.silu(mm(x, wg)) * mm(x, wu)).astype(dtype), wd).astype(dtype)
        return x + jnp.argmax(mm(x, head), axis=-1)[:, None].astype(dtype)  # the next step depends on it

    run = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda _, y: token(y), x))
    x = jax.random.normal(next(keys), (batch, h)).astype(dtype)
    return median_seconds(lambda: jax.block_until_ready(run(x)), repeats=3, warmup=1) / steps


def decode_matmul_flops(cfg, prompt_tokens: int, batch: int, new: int) -> float:
    """Matmul FLOPs that greedy decoding of `new` tokens per row cannot avoid: every real (unpadded)
    prompt token and every new token but the last through the layers' seven projections, and every
    new token through the vocabulary head. Attention is not counted, so this is a lower bound."""
    layer_params, head_params = matmul_params(cfg)
    return 2 * ((prompt_tokens + batch * (new - 1)) * layer_params + batch * new * head_params)


def load_models(weights: str, model: str = "smollm2-135m"):
    """(our cfg, our params, transformers' model in f32 on `torch_device()`, a function batch -> prompt
    ids)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = torch_device()
    if weights == "real":
        from llm2llm_jax.common import assets
        from llm2llm_jax.model.loading import load_smollm2

        cfg, params, tok = load_smollm2(quiet=True, progress=False, scan_layers=False)
        path = assets.smollm2_gguf_path(quiet=True)
        ref = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(path),
            gguf_file=os.path.basename(path),
            dtype=torch.float32,
            attn_implementation="sdpa",
        )
        encoded = [tok(p)["input_ids"] for p in PROMPTS]
        pad_id = tok.pad_token_id
    else:
        from transformers import LlamaConfig as HFConfig
        from transformers import LlamaForCausalLM

        from llm2llm_jax.model.config import LlamaConfig
        from llm2llm_jax.model.weights import ParamBuilder

        shape = MODEL_SHAPES[model]
        torch.manual_seed(0)
        ref = LlamaForCausalLM(HFConfig(**shape, attn_implementation="sdpa"))
        cfg = LlamaConfig(**shape, scan_layers=False)
        builder = ParamBuilder(cfg)
        for name, tensor in ref.state_dict().items():
            builder.put(name, tensor.float().numpy(), "transformers' random init")
        params = builder.finish("transformers' random init")
        rs = np.random.RandomState(0)
        encoded = [list(rs.randint(3, shape["vocab_size"], n)) for n in PROMPT_LENGTHS]
        pad_id = PAD_ID
    ref = ref.to(device).eval()

    def prompts(batch):
        return left_pad([encoded[i % len(encoded)] for i in range(batch)], pad_id, multiple=1)

    return cfg, jax.device_put(params), ref, prompts, pad_id


def measure(
    weights: str, precision: str, kernel_specs, batches, new: int, repeats: int, limits: bool, loaded
) -> dict:
    """Tokens/s of our decoding with each kernel set and of transformers' generate, per batch size;
    prints a table and returns its figures. limits: also the CPU ceiling and FLOP bound."""
    import torch

    cfg, params, ref, prompts, pad_id = loaded
    bf16 = precision == "bf16"
    dtype_name = "bfloat16" if bf16 else "float32"
    ref = ref.to(torch.bfloat16 if bf16 else torch.float32)
    device = torch_device()
    result = {
        "weights": weights,
        "precision": precision,
        "new_tokens": new,
        "device": jax.devices()[0].device_kind,
        "batches": {},
    }
    label = f"[{precision}]"
    peaks = None
    if limits:
        peaks = device_matmul_rate(dtype_name), torch_matmul_rate(dtype=dtype_name)
        print(
            f"{label} matmul rate (2048^2 on a CPU): jax {peaks[0] / 1e9:.0f} GFLOP/s, "
            f"torch {peaks[1] / 1e9:.0f} GFLOP/s",
            flush=True,
        )
    prepared = {
        spec: inference_weights(cfg.replace(dtype=dtype_name, kernels=spec), params) for spec in kernel_specs
    }
    for batch in batches:
        ids, mask = prompts(batch)
        row = result["batches"][str(batch)] = {"kernels": {}}
        n = batch * new
        t_ids = torch.tensor(ids, dtype=torch.long, device=device)
        t_mask = torch.tensor(mask, dtype=torch.long, device=device)

        def theirs(t_ids=t_ids, t_mask=t_mask):
            with torch.no_grad():
                ref.generate(
                    t_ids,
                    attention_mask=t_mask,
                    max_new_tokens=new,
                    min_new_tokens=new,
                    do_sample=False,
                    pad_token_id=pad_id,
                )
            torch_sync()

        ours_s = {}
        for spec, (dec_cfg, dec_params) in prepared.items():

            def ours(dec_cfg=dec_cfg, dec_params=dec_params, ids=ids, mask=mask):
                out = generate(
                    dec_cfg,
                    dec_params,
                    jnp.asarray(ids),
                    jnp.asarray(mask),
                    jax.random.PRNGKey(0),
                    max_new_tokens=new,
                    eos_ids=(),
                    pad_id=pad_id,
                )
                jax.block_until_ready(out)

            ours_s[spec] = median_seconds(ours, repeats=repeats, warmup=1)
        theirs_s = median_seconds(theirs, repeats=repeats, warmup=1)
        row["transformers_tokens_per_s"] = n / theirs_s
        for spec, seconds in ours_s.items():
            row["kernels"][spec] = {"tokens_per_s": n / seconds, "vs_transformers": theirs_s / seconds}
            print(
                f"{label} batch {batch:3d}: llm2llm_jax kernels={spec:4s} {n / seconds:9.1f} tokens/s   "
                f"transformers {n / theirs_s:9.1f} tokens/s   speedup {theirs_s / seconds:5.2f}x",
                flush=True,
            )
        if limits:
            run_cfg = cfg.replace(dtype=dtype_name)
            floor_s = dense_ceiling_seconds(run_cfg, batch)
            row["matmuls_alone_vs_transformers"] = theirs_s / (new * floor_s)
            print(
                f"{label} batch {batch:3d}: matmuls alone (ceiling) {batch / floor_s:8.1f} tokens/s   "
                f"= {theirs_s / (new * floor_s):5.2f}x transformers",
                flush=True,
            )
            flops = decode_matmul_flops(run_cfg, int(mask.sum()), batch, new)
            bound_s = flops / max(peaks)
            row["flop_bound_vs_transformers"] = theirs_s / bound_s
            print(
                f"{label} batch {batch:3d}: FLOP bound: {flops / 1e9:.0f} GFLOP of unavoidable matmuls at "
                f"{max(peaks) / 1e9:.0f} GFLOP/s = {n / bound_s:7.1f} tokens/s = {theirs_s / bound_s:5.2f}x "
                f"transformers at most",
                flush=True,
            )
    return result


def main():
    gpu = on_gpu()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batches", default="1,32,128" if gpu else "1,32")
    ap.add_argument("--precision", default="bf16" if gpu else "f32,bf16")
    ap.add_argument("--kernels", default="xla" if gpu else "cpu,xla")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--weights",
        default="real",
        choices=["real", "random"],
        help="SmolLM2-135M-Instruct's weights, or random ones of its shapes",
    )
    ap.add_argument(
        "--model",
        default="smollm2-135m",
        choices=sorted(MODEL_SHAPES),
        help="the architecture of --weights random",
    )
    ap.add_argument("--no-limits", action="store_true", help="skip the CPU ceiling and FLOP bound")
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args()

    import torch

    loaded = load_models(args.weights, args.model)
    name = "SmolLM2-135M-Instruct" if args.weights == "real" else f"{args.model} architecture"
    print(
        f"{name} ({args.weights} weights), greedy, {args.new} new tokens per row, median of "
        f"{args.repeats}, devices {jax.devices()[0].device_kind}, torch on {torch_device()} "
        f"({torch.get_num_threads()} threads); {malloc_setting()}",
        flush=True,
    )
    results = [
        measure(
            args.weights,
            precision,
            args.kernels.split(","),
            [int(b) for b in args.batches.split(",")],
            args.new,
            args.repeats,
            limits=not (gpu or args.no_limits),
            loaded=loaded,
        )
        for precision in args.precision.split(",")
    ]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    # as launch/run.py does; both sides share it (LLM2LLM_KEEP_MALLOC=1: glibc default)
    reexec_with_reusing_malloc()
    main()
