"""Train-step throughput: llm2llm_jax (jit, one device) vs transformers + PyTorch, same model, batch and AdamW.

Model: SmolLM2-135M architecture (random init; speed does not depend on the weights), f32 master
weights, in two compute precisions: f32, and bf16 (JAX: bf16 compute dtype; PyTorch: CPU autocast
to bf16). Prints tokens/s for both, their ratio, and MFU against a 2048^2 matmul of the same
precision measured in this run (bf16 operands with f32 accumulation for the bf16 rows).

Our step computes the vocabulary projection only where the next token is a target (transformers
computes it everywhere and masks the loss); --targets sets how many of the --seq tokens per row are
targets (default half; an LLM2LLM classification example has a handful). Each precision ends with
the MFU our step would need to run 1.5x as fast as PyTorch's, and a ceiling: the step's matmuls
alone, forward and backward (see `matmul_ceiling_step`), timed in the same run.

  python benchmarks/train_step.py [--batch 8 --seq 256 --targets 128 --repeats 5 --precision f32,bf16]
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import matmul_peak_flops, median_seconds, train_flops_per_token  # noqa: E402

from llm2llm_jax import parallel  # noqa: E402
from llm2llm_jax.allocator import malloc_setting, reexec_with_reusing_malloc  # noqa: E402
from llm2llm_jax.model.config import LlamaConfig  # noqa: E402
from llm2llm_jax.model.kernels import causal_blocks, cpu_matmul, row_major  # noqa: E402  (the cpu kernels' own)
from llm2llm_jax.model.llama import init_params  # noqa: E402
from llm2llm_jax.train import Example, TrainHParams, Trainer, collate, host_params  # noqa: E402

SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
               num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
               max_position_embeddings=8192, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)


def random_batch(rows: int, seq: int, targets: int) -> dict:
    """One collated batch of `rows` random examples, `seq` tokens each, the last `targets` of them targets."""
    rs = np.random.RandomState(0)
    examples = [Example(list(rs.randint(3, SMOLLM2["vocab_size"], seq - targets)),
                        list(rs.randint(3, SMOLLM2["vocab_size"], targets))) for _ in range(rows)]
    return collate(examples, TrainHParams(batch_size=rows, seq_multiple=seq, max_length=seq))


def jax_step(cfg, params, batch_np):
    """One jitted AdamW step on one device (layers unrolled: faster backward on XLA:CPU), as a callable."""
    hp = TrainHParams(learning_rate=1e-5, batch_size=batch_np["input_ids"].shape[1], warmup_ratio=0.0,
                      max_grad_norm=1.0)
    trainer = Trainer(cfg, hp, parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1]), total_steps=1000)
    trainer.init_state(params)
    return lambda: jax.block_until_ready(trainer.step(batch_np))


def matmul_ceiling_step(cfg, batch: int, seq: int, targets: int):
    """The train step's matmuls alone, as a callable: per layer the seven projections and the two
    attention products, then the tied vocabulary head on `targets` rows each, forward and backward
    (the gradient of a chain of them, through the model's own matmul `_mm`), joined only
    by the casts and residual adds that chain them; no norms, RoPE, softmax, loss or optimizer. No
    train step built on XLA:CPU's matmuls can beat it on this machine."""
    h, i, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    heads, kv_heads, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    dt = cfg.jnp_dtype
    shapes = [(h, heads * d), (h, kv_heads * d), (h, kv_heads * d), (heads * d, h), (h, i), (h, i), (i, h)]
    keys = iter(jax.random.split(jax.random.PRNGKey(0), cfg.num_hidden_layers * len(shapes) + 2))
    weights = {"layers": [[jax.random.normal(next(keys), s) * 0.02 for s in shapes]
                          for _ in range(cfg.num_hidden_layers)],
               "embed": jax.random.normal(next(keys), (v, h)) * 0.02}
    x0 = jax.random.normal(next(keys), (batch, seq, h)).astype(dt)

    def proj(a, w):
        return cpu_matmul(a, w.astype(dt)).astype(dt)

    def chain(weights, x):
        for wq, wk, wv, wo, wg, wu, wd in weights["layers"]:
            # The model's attention products (`_attend_rows`), per causal query block [t0, t1) over
            # keys [0, t1): [g * (t1 - t0), D] @ [D, t1], then [g * (t1 - t0), t1] @ [t1, D].
            q = proj(x, wq).reshape(batch, kv_heads, -1, seq, d)
            k = proj(x, wk).reshape(batch, kv_heads, d, seq)
            v = proj(x, wv).reshape(batch, kv_heads, seq, d)
            blocks = []
            for t0, t1 in causal_blocks(seq):
                qb = q[:, :, :, t0:t1].reshape(batch, kv_heads, -1, d)
                scores = cpu_matmul(qb, k[..., :t1]).astype(dt)
                blocks.append(cpu_matmul(scores, v[:, :, :t1]).astype(dt).reshape(batch, kv_heads, -1, t1 - t0, d))
            out = jnp.concatenate(blocks, axis=3)
            x = x + proj(out.reshape(batch, seq, heads * d), wo)
            x = x + proj(proj(x, wg) * proj(x, wu), wd)
        return jnp.sum(cpu_matmul(x[:, :targets], row_major(weights["embed"].astype(dt).T)))

    grads = jax.jit(jax.grad(chain))
    return lambda: jax.block_until_ready(grads(weights, x0))


def torch_step(batch_np, bf16: bool):
    """transformers' LlamaForCausalLM doing the same AdamW step with clipping, as a callable."""
    import torch
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(HFConfig(**SMOLLM2))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ids = torch.tensor(batch_np["input_ids"][0], dtype=torch.long)
    attn = torch.tensor(batch_np["attention_mask"][0], dtype=torch.long)
    labels = torch.full_like(ids, -100)  # the same target tokens as ours: those after each target position
    for row, (positions, mask) in enumerate(zip(batch_np["target_positions"][0], batch_np["target_mask"][0])):
        for p in positions[mask == 1]:
            labels[row, p + 1] = ids[row, p + 1]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--targets", type=int, default=0, help="target tokens per row (default seq / 2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="f32,bf16")
    args = ap.parse_args()

    prompt = args.seq - (args.targets or args.seq // 2)
    batch = random_batch(args.batch, args.seq, args.seq - prompt)
    tokens = args.batch * args.seq
    print(f"model SmolLM2-135M architecture, batch {args.batch} x {args.seq} tokens ({args.seq - prompt} of them targets), "
          f"AdamW step with clipping, median of {args.repeats}; {malloc_setting()}")
    for precision in args.precision.split(","):
        bf16 = precision == "bf16"
        cfg = LlamaConfig(**SMOLLM2, scan_layers=False, dtype="bfloat16" if bf16 else "float32")
        params = host_params(init_params(cfg, jax.random.PRNGKey(0)))
        peak = matmul_peak_flops(dtype="bfloat16" if bf16 else "float32")
        # One side after the other, PyTorch last: built earlier, its allocations in the same heap
        # made some of our steps fault in fresh memory again.
        jax_s = median_seconds(jax_step(cfg, params, batch), repeats=args.repeats, warmup=2)
        ceiling_s = median_seconds(matmul_ceiling_step(cfg, args.batch, args.seq, args.seq - prompt),
                                   repeats=args.repeats, warmup=1)
        torch_s = median_seconds(torch_step(batch, bf16), repeats=args.repeats, warmup=2)
        import torch
        threads = torch.get_num_threads()
        # Each side's MFU counts the work it does: ours runs the vocabulary projection on targets only.
        ours_flops = train_flops_per_token(cfg, args.seq, head_fraction=(args.seq - prompt) / args.seq) * tokens
        torch_flops = train_flops_per_token(cfg, args.seq) * tokens
        print(f"[{precision}] matmul peak (2048^2, jit):        {peak / 1e9:8.1f} GFLOP/s")
        print(f"[{precision}] llm2llm_jax train step:          {jax_s * 1e3:8.0f} ms  {tokens / jax_s:7.0f} tokens/s  "
              f"MFU {ours_flops / jax_s / peak:5.1%}")
        print(f"[{precision}] transformers+torch ({threads} threads): {torch_s * 1e3:8.0f} ms  "
              f"{tokens / torch_s:7.0f} tokens/s  MFU {torch_flops / torch_s / peak:5.1%}")
        print(f"[{precision}] speedup (jax / torch tokens/s):  {torch_s / jax_s:8.2f}x", flush=True)
        # What the 1.5x would ask of our step at the FLOPs it does, and what its matmuls alone allow.
        print(f"[{precision}] 1.5x torch would need MFU:       {ours_flops * 1.5 / torch_s / peak:8.1%}", flush=True)
        print(f"[{precision}] matmuls alone (ceiling):         {ceiling_s * 1e3:8.0f} ms  {tokens / ceiling_s:7.0f} tokens/s  "
              f"= {torch_s / ceiling_s:.2f}x torch", flush=True)


if __name__ == "__main__":
    reexec_with_reusing_malloc()  # as launch/run.py does; both sides share it (LLM2LLM_KEEP_MALLOC=1: glibc default)
    main()
