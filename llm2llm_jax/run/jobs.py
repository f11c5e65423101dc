"""The jobs `launch/run.py` runs by `config.job`: `llm2llm` (a run of the method or a baseline, then its
summary), `compare` (every method over every seed, then the comparison) and `smoke` (load the student,
complete prompts)."""

from __future__ import annotations

import os
import time

import jax

from llm2llm_jax.common import files, parallel
from llm2llm_jax.model.hardware import resolve_dtype
from llm2llm_jax.model.loading import load_pretrained
from llm2llm_jax.run import compare
from llm2llm_jax.run.controller import run_from_config
from llm2llm_jax.run.summary import print_summary
from llm2llm_jax.student.decode import generate_text


def smoke(config) -> None:
    """Load the student and complete the configured prompts."""
    m = config.model
    cfg, params, tokenizer = load_pretrained(
        m.source,
        m.path,
        dtype=resolve_dtype(m.dtype, jax.devices()),
        param_dtype=m.param_dtype,
        scan_layers=m.scan_layers,
        kernels=m.kernels,
    )
    prompts = list(config.smoke.prompts)
    if config.smoke.use_chat_template and tokenizer.chat_template:
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
    start = time.perf_counter()
    outputs = generate_text(cfg, params, tokenizer, prompts, max_new_tokens=config.smoke.max_new_tokens)
    seconds = time.perf_counter() - start
    for prompt, out in zip(config.smoke.prompts, outputs):
        print(f"\n>>> {prompt}\n{out.strip()}")
    print(f"\n{len(prompts)} completions in {seconds:.1f}s (including jit compilation)")


def llm2llm(config) -> None:
    """The LLM2LLM loop (or a baseline), then a one-screen summary."""
    parallel.maybe_initialize_distributed()
    start = time.perf_counter()
    rows = run_from_config(config)
    print_summary(config, rows, (time.perf_counter() - start) / 60)


def compare_methods(config) -> None:
    """Every (method, seed) run of a comparison, then its table (run/compare.py)."""
    parallel.maybe_initialize_distributed()
    start = time.perf_counter()
    comparison = compare.run_experiment(config)
    experiment = files.absolute(config.workdir)
    print(f"\ncomparison on {config.task}, experiment directory {experiment}")
    print("\n".join(compare.table(comparison)))
    print(
        f"{(time.perf_counter() - start) / 60:.1f} min; report: {os.path.join(experiment, 'comparison.md')} "
        f"and comparison.png"
    )


JOBS = {"smoke": smoke, "llm2llm": llm2llm, "compare": compare_methods}
