"""Command-line entry point for llm2llm_jax jobs.

Usage:
  python launch/run.py --config=configs/default.py [--config.FIELD=VALUE ...]

Examples:
  python launch/run.py --config=configs/default.py
  python launch/run.py --config=configs/default.py --config.smoke.max_new_tokens=64
  python launch/run.py --config=configs/default.py --config.model.source=hf --config.model.path=/models/llama-2-7b

Every field of the config file can be overridden with --config.FIELD=VALUE.
"""

import sys
import time

from absl import app, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Path to an ml_collections config file.",
                                          lock_config=True)


def run_smoke(config) -> None:
    """Load the student and complete the configured prompts (the job until the LLM2LLM loop exists)."""
    from llm2llm_jax.decode import generate_text
    from llm2llm_jax.model.loading import load_pretrained

    m = config.model
    cfg, params, tokenizer = load_pretrained(m.source, m.path, dtype=m.dtype, param_dtype=m.param_dtype,
                                             scan_layers=m.scan_layers)
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


JOBS = {"smoke": run_smoke}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    if config.job not in JOBS:
        raise app.UsageError(f"--config.job={config.job!r}; choose one of {sorted(JOBS)}")
    logging.set_verbosity(logging.WARNING)
    JOBS[config.job](config)


if __name__ == "__main__":
    sys.exit(app.run(main))
