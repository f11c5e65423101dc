"""Command-line entry point for llm2llm_jax jobs.

Usage:
  python launch/run.py --config=configs/default.py [--config.FIELD=VALUE ...]

Examples:
  python launch/run.py --config=configs/default.py
  python launch/run.py --config=configs/default.py --config.smoke.max_new_tokens=64
  python launch/run.py --config=configs/default.py --config.model.source=hf \
      --config.model.path=/models/llama-2-7b

Every field of the config file can be overridden with --config.FIELD=VALUE.
"""

import os
import re
import sys

# Configs import `configs.base`; make the repository root importable wherever this is run from.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Path to an ml_collections config file.", lock_config=True
)


def use_compilation_cache(path: str) -> None:
    """Keep compiled executables in `path` across runs (JAX's persistent cache; its key covers the
    program, the compile options, the JAX/XLA version and the devices). "auto" puts it beside the
    downloaded assets, "" turns it off, and JAX_COMPILATION_CACHE_DIR, when set, wins."""
    import jax

    from llm2llm_jax.common import assets

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
            message = f"{given[0] if given else field}: the config has no field {field!r}" + (
                f"; did you mean {hint.group(1)!r}?" if hint else ""
            )
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
        print(
            f"error: --config: cannot load the config file ({str(e).strip().splitlines()[-1].strip()})",
            file=sys.stderr,
        )
        return 2
    from llm2llm_jax.common import gpu_flags

    choice = config.get("gpu_xla_flags", "auto")
    if choice not in gpu_flags.CHOICES:
        print(f"error: config.gpu_xla_flags={choice!r}: choose one of {gpu_flags.CHOICES}", file=sys.stderr)
        return 2
    # before any JAX backend starts: XLA reads its flags once
    before = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = gpu_flags.with_gpu_flags(before, choice, gpu_flags.nvidia_gpu_visible())
    if os.environ["XLA_FLAGS"] != before:
        print(
            f"XLA_FLAGS={os.environ['XLA_FLAGS']} (config.gpu_xla_flags={choice}; 'off' keeps XLA's own)",
            file=sys.stderr,
        )
    from llm2llm_jax.run.jobs import JOBS  # after the allocator restart: it imports jax

    if config.job not in JOBS:
        raise app.UsageError(f"--config.job={config.job!r}; choose one of {sorted(JOBS)}")
    logging.set_verbosity(logging.WARNING)
    use_compilation_cache(config.get("compile_cache_dir", ""))
    from llm2llm_jax.common.disk_faults import collect_abandoned_writes
    from llm2llm_jax.common.errors import UserError
    from llm2llm_jax.common.stopping import stop_message, stop_on_signals

    stop_on_signals()
    try:
        JOBS[config.job](config)
        return 0
    except UserError as e:  # a problem with the input or the environment: say what to do, no traceback
        print(f"error: {e}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: finished stages are on disk, the lock released
        line, status = stop_message(stop)
        print(f"\n{line}", file=sys.stderr)
    collect_abandoned_writes()
    return status


if __name__ == "__main__":
    from llm2llm_jax.common.allocator import reexec_with_reusing_malloc

    reexec_with_reusing_malloc()  # before jax starts: freed step buffers are reused, not re-faulted
    sys.exit(app.run(main, flags_parser=parse_flags))
