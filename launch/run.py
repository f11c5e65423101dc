"""Command-line entry point for llm2llm_jax jobs.

Usage:
  python launch/run.py --config=configs/default.py [--config.FIELD=VALUE ...]

Examples:
  python launch/run.py --config=configs/default.py
  python launch/run.py --config=configs/default.py --config.smoke.max_new_tokens=64
  python launch/run.py --config=configs/default.py --config.model.source=hf --config.model.path=/models/llama-2-7b

Every field of the config file can be overridden with --config.FIELD=VALUE.
"""

import os
import re
import sys
import time

# Configs import `configs.base`; make the repository root importable wherever this is run from.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Path to an ml_collections config file.",
                                          lock_config=True)


def run_smoke(config) -> None:
    """Load the student and complete the configured prompts (the job until the LLM2LLM loop exists)."""
    import jax

    from llm2llm_jax.decode import generate_text
    from llm2llm_jax.model.kernels import resolve_dtype
    from llm2llm_jax.model.loading import load_pretrained

    m = config.model
    cfg, params, tokenizer = load_pretrained(m.source, m.path, dtype=resolve_dtype(m.dtype, jax.devices()),
                                             param_dtype=m.param_dtype,
                                             scan_layers=m.scan_layers, kernels=m.kernels)
    prompts = list(config.smoke.prompts)
    if config.smoke.use_chat_template and tokenizer.chat_template:
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                 add_generation_prompt=True) for p in prompts]
    start = time.perf_counter()
    outputs = generate_text(cfg, params, tokenizer, prompts, max_new_tokens=config.smoke.max_new_tokens)
    seconds = time.perf_counter() - start
    for prompt, out in zip(config.smoke.prompts, outputs):
        print(f"\n>>> {prompt}\n{out.strip()}")
    print(f"\n{len(prompts)} completions in {seconds:.1f}s (including jit compilation)")


def run_llm2llm(config) -> None:
    """The LLM2LLM loop (or a baseline), then a one-screen summary."""
    from llm2llm_jax import files, loop, parallel, timing
    from llm2llm_jax.teacher.backends import describe_spend, read_spend

    parallel.maybe_initialize_distributed()
    start = time.perf_counter()
    rows = loop.run_from_config(config)
    minutes = (time.perf_counter() - start) / 60
    workdir = files.absolute(config.workdir)
    print(f"\nLLM2LLM on {config.task} ({config.method}), run directory {workdir}")
    print(f"{'iter':>4} {'train size':>10} {'seed acc':>9} {'test acc':>9} {'new':>5}")
    for r in rows:
        note = (f"  (reused iteration {r['reused_from']})" if "reused_from" in r
                else f"  (reused {r['shared_from']})" if "shared_from" in r else "")
        print(f"{r['iteration']:>4} {r['train_size']:>10} {r['seed_accuracy']:>9.1%} {r['test_accuracy']:>9.1%} "
              f"{r.get('new_examples', 0):>5}{note}")
    if rows and rows[-1].get("stopped"):
        print(f"stopped early: {rows[-1]['stopped']}")
    spend = read_spend(workdir)
    if spend:
        print(f"teacher spend over the whole run: {describe_spend(spend)}")
    if rows:
        print(f"test accuracy {rows[0]['test_accuracy']:.1%} (plain fine-tuning, iteration 0) -> "
              f"{rows[-1]['test_accuracy']:.1%} after {len(rows)} iteration(s); {minutes:.1f} min")
    stage_seconds, stage_flops = timing.totals(rows, "stage_seconds"), timing.totals(rows, "stage_flops")
    if stage_seconds:
        print(f"where the iterations' time went: {timing.describe(stage_seconds)}")
    if stage_flops:
        import jax

        from llm2llm_jax import flops
        from llm2llm_jax.model import kernels

        dtype = kernels.resolve_dtype(config.model.dtype, jax.devices())
        rate = flops.device_matmul_rate(dtype)
        print(f"against this device's {dtype} matmul rate ({rate / 1e9:,.0f} GFLOP/s): "
              f"{timing.describe_bound(stage_seconds, stage_flops, rate)}")
    print(f"report: {os.path.join(workdir, 'report.md')} and report.png")


def run_compare(config) -> None:
    """Every (method, seed) run of a comparison, then its table (llm2llm_jax/compare.py)."""
    from llm2llm_jax import compare, files, parallel

    parallel.maybe_initialize_distributed()
    start = time.perf_counter()
    comparison = compare.run_experiment(config)
    experiment = files.absolute(config.workdir)
    print(f"\ncomparison on {config.task}, experiment directory {experiment}")
    print("\n".join(compare.table(comparison)))
    print(f"{(time.perf_counter() - start) / 60:.1f} min; report: {os.path.join(experiment, 'comparison.md')} "
          f"and comparison.png")


JOBS = {"smoke": run_smoke, "llm2llm": run_llm2llm, "compare": run_compare}


def use_compilation_cache(path: str) -> None:
    """Keep compiled executables in `path` across runs (JAX's persistent cache; its key covers the
    program, the compile options, the JAX/XLA version and the devices). "auto" puts it beside the
    downloaded assets, "" turns it off, and JAX_COMPILATION_CACHE_DIR, when set, wins."""
    import jax

    from llm2llm_jax import assets

    if not path or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    if path == "auto":
        path = os.path.join(assets.cache_dir(), "jax_compile")
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))


def parse_flags(argv):
    """absl's flag parsing, with a bad --config or --config.FIELD override reported as one line (exit 2)."""
    try:
        return flags.FLAGS(argv)
    except Exception as e:  # noqa: BLE001 - absl, ml_collections and the config file raise many kinds
        raw = str(e.args[0]) if isinstance(e, (KeyError, AttributeError)) and e.args else str(e)
        message = " ".join(raw.split())
        if isinstance(e, (KeyError, AttributeError)):  # a field the config does not have
            field = re.search(r"([A-Za-z_][A-Za-z0-9_]*)", raw).group(1)
            given = [a for a in argv[1:] if a.startswith("--config.") and field in a]
            hint = re.search(r'Did you mean "([^"]+)"', raw)
            message = (f"{given[0] if given else field}: the config has no field {field!r}"
                       + (f"; did you mean {hint.group(1)!r}?" if hint else ""))
        elif "Error whilst parsing config file" in raw:  # ml_collections wraps the config file's own error
            message = f"--config file: {raw.strip().splitlines()[-1]}"
        elif not isinstance(e, flags.Error):
            message = f"{type(e).__name__}: {message}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = _CONFIG.value
        config.get("job")  # an unreadable config file raises on first use
    except OSError as e:  # ml_collections defers a config file it could not read until here
        print(f"error: --config: cannot load the config file ({str(e).strip().splitlines()[-1].strip()})",
              file=sys.stderr)
        return 2
    if config.job not in JOBS:
        raise app.UsageError(f"--config.job={config.job!r}; choose one of {sorted(JOBS)}")
    logging.set_verbosity(logging.WARNING)
    use_compilation_cache(config.get("compile_cache_dir", ""))
    from llm2llm_jax.errors import UserError

    from llm2llm_jax.rundir import collect_abandoned_writes

    try:
        JOBS[config.job](config)
        return 0
    except UserError as e:  # a problem with the input or the environment: say what to do, no traceback
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:  # every finished stage is on disk; the run directory's lock is released
        print("\ninterrupted; rerun the same command to continue", file=sys.stderr)
        status = 130
    collect_abandoned_writes()
    return status


if __name__ == "__main__":
    from llm2llm_jax.allocator import reexec_with_reusing_malloc

    reexec_with_reusing_malloc()  # before jax starts: freed step buffers are reused, not re-faulted
    sys.exit(app.run(main, flags_parser=parse_flags))
