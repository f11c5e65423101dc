"""Train-step throughput: llm2llm_jax with each kernel set vs transformers + PyTorch, same model, batch and
AdamW.

Random weights of a named architecture (speed does not depend on them), f32 master weights and an
AdamW step with clipping on both sides; bf16 compute means JAX's bf16 compute dtype and PyTorch's
autocast to bf16. Prints, per precision, one row per kernel set (`--kernels`, side by side in this
process), PyTorch's row, each ratio, and MFU: against the datasheet's dense bf16 peak on an accelerator the
table in llm2llm_jax/student/flops.py knows (the matmul measured here printed beside it as GEMM
efficiency), against that measured matmul of the same precision on a CPU.

On CPU (the default there: SmolLM2-135M, batch 8 x 256, f32 and bf16, kernels cpu and xla), each
precision ends with a ceiling for the cpu kernels: the step's matmuls alone, forward and backward
(`matmul_ceiling_step`). On a GPU (default there: bf16, kernels xla and xla+cudnn) PyTorch runs on
CUDA with SDPA attention and fused AdamW; `--lora R` trains rank-R adapters on a bf16 frozen base
on both sides (PEFT for PyTorch).

Our step computes the vocabulary projection only where the next token is a target; the PyTorch side does
the same (its decoder, then its head and the loss on those positions), so both do equal work. --targets
sets how many of the --seq tokens per row are targets (default half; an LLM2LLM classification example has
a handful). MFU counts the standard model FLOPs (6N with the head on every position, causal attention);
the work both steps do is printed beside it.

  python benchmarks/train_step.py [--model smollm2-135m --batch 8 --seq 256 --targets 128 --repeats 5
                                   --precision f32,bf16 --kernels cpu,xla --lora 0 --json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # a GPU's memory is shared with PyTorch here

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    MODEL_SHAPES,
    datasheet_peak,
    device_matmul_rate,
    median_seconds,
    on_gpu,
    torch_device,
    torch_sync,
    train_flops_per_token,
)

from llm2llm_jax.common import parallel
from llm2llm_jax.common.allocator import malloc_setting, reexec_with_reusing_malloc
from llm2llm_jax.model.attention import causal_blocks
from llm2llm_jax.model.config import LlamaConfig
from llm2llm_jax.model.kernels import cpu_matmul, row_major
from llm2llm_jax.model.llama import init_params
from llm2llm_jax.student.batching import Example, collate
from llm2llm_jax.student.recipe import TrainHParams
from llm2llm_jax.student.train import Trainer, host_params

SMOLLM2 = MODEL_SHAPES["smollm2-135m"]


def kernel_options(spec: str) -> dict:
    """'cpu', 'xla' (einsum attention), or 'xla+cudnn' / 'xla+fused' (training attention through
    jax.nn.dot_product_attention with its cuDNN or XLA implementation) / 'xla+blocked' (the blocked
    attention) / 'xla+auto' (what model.fused_attention=auto picks on these devices) as LlamaConfig fields."""
    name, _, fused = spec.partition("+")
    choice = {"": "off", "cudnn": "cudnn", "fused": "xla", "blocked": "blocked", "auto": "auto"}[fused]
    return dict(kernels=name, fused_attention=choice)


def random_batch(rows: int, seq: int, targets: int, vocab: int = SMOLLM2["vocab_size"]) -> dict:
    """One collated batch of `rows` random examples, `seq` tokens each, the last `targets` of them targets."""
    rs = np.random.RandomState(0)
    examples = [
        Example(list(rs.randint(3, vocab, seq - targets)), list(rs.randint(3, vocab, targets)))
        for _ in range(rows)
    ]
    return collate(examples, TrainHParams(batch_size=rows, seq_multiple=seq, max_length=seq))


def jax_step(cfg, params, batch_np):
    """One jitted AdamW step on one device, as a callable that does not wait for it."""
    hp = TrainHParams(
        learning_rate=1e-5, batch_size=batch_np["input_ids"].shape[1], warmup_ratio=0.0, max_grad_norm=1.0
    )
    trainer = Trainer(cfg, hp, parallel.make_mesh((1, 1, 1), devices=jax.devices()[:1]), total_steps=1000)
    trainer.init_state(params)
    return lambda: trainer.step(batch_np)


def time_jax_step(cfg, batch_np, repeats: int, pipelined: int = 0) -> dict:
    """Our train step for random weights of `cfg` (built, timed and freed here): {"compile_s": the first
    call, compilation included, "seconds": the median of `repeats` waited-for steps, and with `pipelined`
    > 0 "pipelined_s": the mean of that many steps dispatched back to back and waited for once}."""
    out = _time_step(
        jax_step(cfg, host_params(init_params(cfg, jax.random.PRNGKey(0))), batch_np), repeats, pipelined
    )
    gc.collect()  # the step's state is freed before the next one is built
    return out


def _time_step(step, repeats: int, pipelined: int) -> dict:
    start = time.perf_counter()
    jax.block_until_ready(step())
    out = {"compile_s": time.perf_counter() - start}
    out["seconds"] = median_seconds(lambda: jax.block_until_ready(step()), repeats=repeats, warmup=1)
    if pipelined:
        start = time.perf_counter()
        for _ in range(pipelined):
            last = step()
        jax.block_until_ready(last)
        out["pipelined_s"] = (time.perf_counter() - start) / pipelined
    return out


def matmul_ceiling_step(cfg, batch: int, seq: int, targets: int):
    """The cpu kernels' train step reduced to its matmuls, as a callable: per layer the seven
    projections and the two attention products, then the tied vocabulary head on `targets` rows each,
    forward and backward (the gradient of a chain of them, through the cpu kernels' `cpu_matmul`),
    joined only by the casts and residual adds that chain them; no norms, RoPE, softmax, loss or
    optimizer. No train step built on XLA:CPU's matmuls can beat it on this machine."""
    h, i, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    heads, kv_heads, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    dt = cfg.jnp_dtype
    shapes = [(h, heads * d), (h, kv_heads * d), (h, kv_heads * d), (heads * d, h), (h, i), (h, i), (i, h)]
    keys = iter(jax.random.split(jax.random.PRNGKey(0), cfg.num_hidden_layers * len(shapes) + 2))
    weights = {
        "layers": [
            [jax.random.normal(next(keys), s) * 0.02 for s in shapes] for _ in range(cfg.num_hidden_layers)
        ],
        "embed": jax.random.normal(next(keys), (v, h)) * 0.02,
    }
    x0 = jax.random.normal(next(keys), (batch, seq, h)).astype(dt)

    def proj(a, w):
        return cpu_matmul(a, w.astype(dt)).astype(dt)

    def chain(weights, x):
        for wq, wk, wv, wo, wg, wu, wd in weights["layers"]:
            # The cpu kernels' attention products (`attend_rows`), per causal query block [t0, t1) over
            # keys [0, t1): [g * (t1 - t0), D] @ [D, t1], then [g * (t1 - t0), t1] @ [t1, D].
            q = proj(x, wq).reshape(batch, kv_heads, -1, seq, d)
            k = proj(x, wk).reshape(batch, kv_heads, d, seq)
            v = proj(x, wv).reshape(batch, kv_heads, seq, d)
            blocks = []
            for t0, t1 in causal_blocks(seq):
                qb = q[:, :, :, t0:t1].reshape(batch, kv_heads, -1, d)
                scores = cpu_matmul(qb, k[..., :t1]).astype(dt)
                blocks.append(
                    cpu_matmul(scores, v[:, :, :t1]).astype(dt).reshape(batch, kv_heads, -1, t1 - t0, d)
                )
            out = jnp.concatenate(blocks, axis=3)
            x = x + proj(out.reshape(batch, seq, heads * d), wo)
            x = x + proj(proj(x, wg) * proj(x, wu), wd)
        return jnp.sum(cpu_matmul(x[:, :targets], row_major(weights["embed"].astype(dt).T)))

    grads = jax.jit(jax.grad(chain))
    return lambda: jax.block_until_ready(grads(weights, x0))


def torch_step(shape: dict, batch_np, bf16: bool, lora_rank: int = 0):
    """transformers' LlamaForCausalLM doing the same AdamW step with clipping on `torch_device()`, as a
    callable, on equal work: its decoder, then its vocabulary head and the loss on our target positions only.
    On CUDA: SDPA attention and fused AdamW. LoRA: PEFT adapters on a bf16 frozen base."""
    import torch
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    device = torch_device()
    torch.manual_seed(0)
    base_dtype = torch.bfloat16 if lora_rank else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(HFConfig(**shape, attn_implementation="sdpa")).to(base_dtype)
    if lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=lora_rank,
                lora_alpha=16,
                lora_dropout=0.0,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            ),
        )
    model.train()
    core = model.get_base_model() if lora_rank else model  # PEFT's adapters live inside its modules
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.0, fused=device == "cuda")
    ids = torch.tensor(batch_np["input_ids"][0], dtype=torch.long, device=device)
    attn = torch.tensor(batch_np["attention_mask"][0], dtype=torch.long, device=device)
    # Equal work: the vocabulary head on the same positions as ours (those followed by a target token).
    rows, positions = [], []
    for row, (pos, mask) in enumerate(zip(batch_np["target_positions"][0], batch_np["target_mask"][0])):
        rows += [row] * int(mask.sum())
        positions += [int(p) for p in pos[mask == 1]]
    rows_t = torch.tensor(rows, dtype=torch.long, device=device)
    pos_t = torch.tensor(positions, dtype=torch.long, device=device)
    targets = ids[rows_t, pos_t + 1]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            hidden = core.model(input_ids=ids, attention_mask=attn).last_hidden_state
            logits = core.lm_head(hidden[rows_t, pos_t])
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        torch_sync()

    return step


def time_torch_step(shape, batch_np, bf16: bool, lora_rank: int, repeats: int) -> float:
    """Median seconds of PyTorch's step (built, timed and freed here)."""
    step = torch_step(shape, batch_np, bf16, lora_rank)
    seconds = median_seconds(step, repeats=repeats, warmup=2)
    del step
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # give the memory back before JAX's step allocates
    return seconds


def measure(
    model: str,
    precision: str,
    kernel_specs,
    batch: int,
    seq: int,
    targets: int,
    repeats: int,
    lora_rank: int = 0,
    scan_layers: bool = False,
    remat: str = "none",
    peak: float = 0.0,
    ceiling: bool = False,
    pipelined: int = 0,
) -> dict:
    """Time our step with each kernel set and PyTorch's step on one batch; prints a table and returns
    its figures. peak: the FLOP/s to quote MFU against (default: the datasheet's, else the matmul rate)."""
    import torch

    bf16 = precision == "bf16"
    shape = MODEL_SHAPES[model]
    data = random_batch(batch, seq, targets, shape["vocab_size"])
    tokens = batch * seq
    n = 2048 if jax.devices()[0].platform == "cpu" else 8192  # the size device_matmul_rate times
    gemm = device_matmul_rate("bfloat16" if bf16 else "float32")
    datasheet = datasheet_peak(jax.devices()[0].device_kind)
    peak = peak or datasheet or gemm
    base = LlamaConfig(
        **shape,
        scan_layers=scan_layers,
        remat_policy=remat,
        dtype="bfloat16" if bf16 else "float32",
        param_dtype="bfloat16" if lora_rank else "float32",
        lora_rank=lora_rank,
    )
    # MFU counts the standard model FLOPs (6N with the head on every position, causal attention); the
    # work both steps really do (the head on the target positions) is reported beside it.
    model_flops = train_flops_per_token(base, seq, frozen=bool(lora_rank)) * tokens
    work_flops = (
        train_flops_per_token(base, seq, head_fraction=targets / seq, frozen=bool(lora_rank)) * tokens
    )
    result = {
        "model": model,
        "precision": precision,
        "batch": batch,
        "seq": seq,
        "targets": targets,
        "lora_rank": lora_rank,
        "peak_tflops": peak / 1e12,
        "peak_is": "datasheet" if peak == datasheet else "measured matmul",
        "gemm_tflops": gemm / 1e12,
        "device": str(jax.devices()[0].device_kind),
        "kernels": {},
    }
    label = f"[{model} {precision}{f' lora{lora_rank}' if lora_rank else ''}]"
    print(
        f"{label} matmul ({n}^2 as the kernels multiply, after warm-up): {gemm / 1e9:10.1f} GFLOP/s"
        + (
            f"; datasheet peak {datasheet / 1e12:.0f} TFLOP/s (GEMM efficiency {gemm / datasheet:.0%})"
            if datasheet
            else ""
        )
        + f"; MFU against the {result['peak_is']} ({peak / 1e9:,.0f} GFLOP/s)",
        flush=True,
    )

    def report(name, seconds):
        row = {
            "step_ms": seconds * 1e3,
            "tokens_per_s": tokens / seconds,
            "mfu": model_flops / seconds / peak,
            "work_utilization": work_flops / seconds / peak,
        }
        print(
            f"{label} {name:32s} {seconds * 1e3:9.1f} ms  {tokens / seconds:9.0f} tokens/s  MFU "
            f"{row['mfu']:6.1%}  (work done {row['work_utilization']:6.1%})",
            flush=True,
        )
        return row

    # On a GPU PyTorch goes first and hands its cached memory back; on CPU it goes last (built earlier,
    # its allocations in the same heap made some of our steps fault in fresh memory again).
    if on_gpu():
        result["torch"] = report(
            f"transformers+torch ({torch_device()})",
            time_torch_step(shape, data, bf16, lora_rank, repeats),
        )
    for spec in kernel_specs:
        cfg = base.replace(**kernel_options(spec))
        try:
            timing = time_jax_step(cfg, data, repeats, pipelined)
        except Exception as e:  # noqa: BLE001 - one spec out of memory must not end the others' timing
            print(f"{label} llm2llm_jax kernels={spec}: {type(e).__name__}: {str(e)[:200]}", flush=True)
            gc.collect()
            continue
        row = result["kernels"][spec] = report(f"llm2llm_jax kernels={spec}", timing["seconds"])
        row["compile_s"] = round(timing["compile_s"], 2)
        extra = f"first step (compiling) {timing['compile_s']:.1f} s"
        if pipelined:
            row["pipelined_ms"] = timing["pipelined_s"] * 1e3
            extra += f"; {pipelined} steps back to back {timing['pipelined_s'] * 1e3:.1f} ms each"
        print(f"{label} {'':32s} {extra}", flush=True)
    if ceiling:
        cfg = base.replace(kernels="cpu")
        seconds = median_seconds(matmul_ceiling_step(cfg, batch, seq, targets), repeats=repeats, warmup=1)
        result["cpu_matmuls_alone"] = report("cpu kernels' matmuls alone", seconds)
    if "torch" not in result:
        label_torch = f"transformers+torch ({torch.get_num_threads()} threads)"
        result["torch"] = report(label_torch, time_torch_step(shape, data, bf16, lora_rank, repeats))
    torch_s = result["torch"]["step_ms"] / 1e3
    for spec, row in result["kernels"].items():
        row["vs_torch"] = torch_s / (row["step_ms"] / 1e3)
        print(f"{label} speedup kernels={spec:21s} {row['vs_torch']:6.2f}x transformers+torch", flush=True)
    if ceiling:
        ratio = torch_s / (result["cpu_matmuls_alone"]["step_ms"] / 1e3)
        result["cpu_matmuls_alone"]["vs_torch"] = ratio
        print(f"{label} ceiling (cpu kernels' matmuls alone) {ratio:6.2f}x transformers+torch", flush=True)
    return result


def main():
    gpu = on_gpu()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(MODEL_SHAPES))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--targets", type=int, default=0, help="target tokens per row (default seq / 2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="bf16" if gpu else "f32,bf16")
    ap.add_argument(
        "--kernels",
        default="xla,xla+cudnn" if gpu else "cpu,xla",
        help="kernel sets to time side by side: cpu, xla, xla+cudnn, xla+fused, xla+blocked",
    )
    ap.add_argument("--pipelined", type=int, default=0, help="also time this many steps back to back")
    ap.add_argument("--lora", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    ap.add_argument("--scan", action="store_true", help="scan over layers (default: unrolled)")
    ap.add_argument("--remat", default="none", help="remat policy (none, full, dots, ...)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the cpu kernels' matmuls-alone ceiling")
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args()

    targets = args.targets or args.seq // 2
    print(
        f"{args.model} architecture, random weights, batch {args.batch} x {args.seq} tokens ({targets} of "
        f"them targets), AdamW step with clipping, median of {args.repeats}; devices "
        f"{jax.devices()[0].device_kind}; "
        f"{malloc_setting()}",
        flush=True,
    )
    results = [
        measure(
            args.model,
            precision,
            args.kernels.split(","),
            args.batch,
            args.seq,
            targets,
            args.repeats,
            lora_rank=args.lora,
            scan_layers=args.scan,
            remat=args.remat,
            ceiling=not (gpu or args.lora or args.no_ceiling),
            pipelined=args.pipelined,
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
