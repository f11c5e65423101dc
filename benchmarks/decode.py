"""Greedy decoding throughput: llm2llm_jax (jitted prefill + while_loop, KV cache) vs transformers `generate`.

Real SmolLM2-135M-Instruct weights (GGUF), the same left-padded prompts, exactly --new tokens per
row (EOS disabled on both sides so the work is identical), batch 1 and batch 32, in f32 and in bf16
(both sides run bf16 weights: transformers with the model cast to bf16, llm2llm_jax with the bf16
compute dtype). Each side prepares its weights once, outside the timing: transformers' `.to(dtype)`
and llm2llm_jax's `inference_weights` (the cast and the untied head), as the evaluation loop does.
Layers unrolled, as configs/default.py runs them on CPU. Each row is followed by a ceiling: the
same-shaped matmuls alone, chained in one jit (see `dense_ceiling_seconds`); and a bound: the matmul
FLOPs any decoder must do for that batch (`decode_matmul_flops`) at the faster of JAX's and
PyTorch's matmul peak measured in this run, the ratio no decoder on this machine could beat even
with attention, norms and sampling for free.

  python benchmarks/decode.py [--new 64 --batches 1,32 --precision f32,bf16 --repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import matmul_params, matmul_peak_flops, median_seconds, torch_matmul_peak_flops  # noqa: E402

from llm2llm_jax import assets  # noqa: E402
from llm2llm_jax.allocator import malloc_setting, reexec_with_reusing_malloc  # noqa: E402
from llm2llm_jax.decode import generate, inference_weights, left_pad  # noqa: E402

PROMPTS = [
    "What is the capital of France?", "Explain photosynthesis in one sentence.",
    "Question: How far is it from Denver to Aspen?\nType:", "Write a haiku about the sea.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many?",
    "List three primary colors:", "Who wrote Pride and Prejudice?", "Translate to French: good morning",
]


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--precision", default="f32,bf16")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    cfg, params, tok = assets.load_smollm2(quiet=True, progress=False, scan_layers=False)
    path = assets.smollm2_gguf_path(quiet=True)
    ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                               dtype=torch.float32).eval()
    params = jax.device_put(params)
    print(f"SmolLM2-135M-Instruct, greedy, {args.new} new tokens per row, median of {args.repeats}, "
          f"torch threads {torch.get_num_threads()}; {malloc_setting()}")
    for precision in args.precision.split(","):
        bf16 = precision == "bf16"
        dtype_name = "bfloat16" if bf16 else "float32"
        run_cfg = cfg.replace(dtype=dtype_name)
        ref = ref.to(torch.bfloat16 if bf16 else torch.float32)
        dec_cfg, dec_params = inference_weights(run_cfg, params)
        peaks = matmul_peak_flops(dtype=dtype_name), torch_matmul_peak_flops(dtype=dtype_name)
        print(f"[{precision}] 2048^2 matmul peak: jax {peaks[0] / 1e9:.0f} GFLOP/s, torch {peaks[1] / 1e9:.0f} GFLOP/s",
              flush=True)
        for batch in [int(b) for b in args.batches.split(",")]:
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
            ids, mask = left_pad([tok(p)["input_ids"] for p in prompts], tok.pad_token_id, multiple=1)

            def ours():
                out = generate(dec_cfg, dec_params, jnp.asarray(ids), jnp.asarray(mask), jax.random.PRNGKey(0),
                               max_new_tokens=args.new, eos_ids=(), pad_id=tok.pad_token_id)
                jax.block_until_ready(out)

            t_ids, t_mask = torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)

            def theirs():
                with torch.no_grad():
                    ref.generate(t_ids, attention_mask=t_mask, max_new_tokens=args.new, min_new_tokens=args.new,
                                 do_sample=False, pad_token_id=tok.pad_token_id)

            ours_s = median_seconds(ours, repeats=args.repeats, warmup=1)
            theirs_s = median_seconds(theirs, repeats=args.repeats, warmup=1)
            n = batch * args.new
            print(f"[{precision}] batch {batch:3d}: llm2llm_jax {n / ours_s:8.1f} tokens/s   "
                  f"transformers {n / theirs_s:8.1f} tokens/s   speedup {theirs_s / ours_s:5.2f}x", flush=True)
            floor_s = dense_ceiling_seconds(run_cfg, batch)
            print(f"[{precision}] batch {batch:3d}: matmuls alone (ceiling) {batch / floor_s:8.1f} tokens/s   "
                  f"= {theirs_s / (args.new * floor_s):5.2f}x transformers", flush=True)
            flops = decode_matmul_flops(run_cfg, int(mask.sum()), batch, args.new)
            bound_s = flops / max(peaks)
            print(f"[{precision}] batch {batch:3d}: FLOP bound: {flops / 1e9:.0f} GFLOP of unavoidable matmuls at "
                  f"{max(peaks) / 1e9:.0f} GFLOP/s = {n / bound_s:7.1f} tokens/s = {theirs_s / bound_s:5.2f}x "
                  f"transformers at most; 3x needs {3 * flops / theirs_s / max(peaks):.0%} of that peak throughout",
                  flush=True)


if __name__ == "__main__":
    reexec_with_reusing_malloc()  # as launch/run.py does; both sides share it (LLM2LLM_KEEP_MALLOC=1: glibc default)
    main()
