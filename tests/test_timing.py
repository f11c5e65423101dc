"""The stage clock: wall time per kind, compilation counted apart, a nested block taken out of its outer
one."""

import time

import jax
import jax.numpy as jnp

from llm2llm_jax.run import timing


def _long_to_compile(x):
    """Two hundred elementwise steps: a program that takes a few tenths of a second to compile."""
    for k in range(200):
        x = jnp.sin(x * (k + 1)) + jnp.cos(x)
    return x


def test_stage_clock_splits_compilation_and_nested_blocks():
    clock = timing.StageClock()
    with clock.timing("fine-tune"):
        time.sleep(0.2)
        with clock.timing("load"):
            time.sleep(0.1)
            jax.jit(lambda x: _long_to_compile(x))(jnp.arange(7.0)).block_until_ready()  # a fresh compilation
    seconds = dict(clock.seconds)
    assert seconds["compile"] > 0.15, seconds  # long enough that counting it in a stage would show
    # bounds that hold on a busy machine too: load without the compilation, fine-tune without the nested load
    assert 0.1 <= seconds["load"] < 0.1 + seconds["compile"], seconds
    assert 0.2 <= seconds["fine-tune"] < 0.2 + seconds["load"], seconds
    taken = clock.take()
    assert list(taken) == [k for k in timing.KINDS if k in taken] and clock.seconds == {}
    assert (
        timing.describe({"evaluation": 12.4, "fine-tune": 40.6, "teacher": 0.0})
        == "fine-tune 41 s, evaluation 12 s"
    )


def test_flops_per_kind_and_the_bound_beside_the_measured_time():
    clock = timing.StageClock()
    clock.add_flops("evaluation", 2e9)
    clock.add_flops("fine-tune", 3e9)
    clock.add_flops("fine-tune", 1e9)
    clock.add_flops("teacher", 0.0)  # a remote teacher computes nothing here
    assert clock.take_flops() == {"fine-tune": 4e9, "evaluation": 2e9} and clock.flops == {}
    rows = [
        {"stage_seconds": {"fine-tune": 30.0}, "stage_flops": {"fine-tune": 4e9}},
        {
            "stage_seconds": {"fine-tune": 10.0, "evaluation": 5.0},
            "stage_flops": {"fine-tune": 4e9, "evaluation": 1e9},
        },
    ]
    seconds, flops = timing.totals(rows, "stage_seconds"), timing.totals(rows, "stage_flops")
    assert seconds == {"fine-tune": 40.0, "evaluation": 5.0} and flops == {
        "fine-tune": 8e9,
        "evaluation": 1e9,
    }
    assert timing.describe_bound(seconds, flops, rate=1e9) == (
        "fine-tune 40 s measured, 8 s FLOP-bound (20%); evaluation 5 s measured, 1 s FLOP-bound (20%)"
    )


def test_accelerators_are_quoted_against_their_datasheet_peak():
    from llm2llm_jax.student.flops import datasheet_peak

    assert datasheet_peak("NVIDIA H100 80GB HBM3") == datasheet_peak("NVIDIA H200") == 989e12
    assert datasheet_peak("NVIDIA H100 PCIe") == 756e12  # not the SXM card's figure
    assert datasheet_peak("NVIDIA A100-SXM4-40GB") == 312e12
    assert datasheet_peak("TPU v4") == 275e12
    assert datasheet_peak("TPU v5 lite") == 197e12 and datasheet_peak("TPU v5") == 459e12  # v5e, v5p
    assert datasheet_peak("TPU v6 lite") == 918e12
    assert datasheet_peak("cpu") is None and datasheet_peak("NVIDIA GeForce RTX 4090") is None


def test_a_cpu_is_calibrated_on_the_product_its_kernels_run(monkeypatch):
    """The cpu kernels multiply bf16 operands into an f32 result, which XLA:CPU runs on its bf16 kernels; a
    bf16-result product would time its f32 kernel instead, a "peak" several times below the model's own."""
    from llm2llm_jax.student import flops

    timed = {}

    def rate(n, repeats, dtype, fastest=False, product=jnp.matmul):
        a = jnp.ones((4, 4), dtype)
        timed.update(n=n, fastest=fastest, operands=a.dtype, result=product(a, a).dtype)
        return 1e12

    monkeypatch.setattr(flops, "matmul_rate", rate)
    assert flops.device_matmul_rate("bfloat16") == 1e12
    assert timed == {"n": 2048, "fastest": True, "operands": jnp.bfloat16, "result": jnp.float32}


def test_a_run_stores_its_devices_speed_each_iteration_and_its_summary_takes_the_median(monkeypatch, capsys):
    from ml_collections import ConfigDict

    from llm2llm_jax.run import summary
    from llm2llm_jax.student import flops

    measured = []
    rates = iter([2e9, 0.4e9, 2e9])  # the second iteration ends on a busy moment

    def measure(dtype):
        measured.append(dtype)
        return next(rates)

    monkeypatch.setattr(flops, "device_matmul_rate", measure)
    timer = timing.StageTimer("float32")
    rows = []
    for i in range(3):
        with timer.stage("fine-tune"):
            pass
        timer.computed("fine-tune", 2e9 * (i + 1))
        row = {}
        timer.iteration_done(row)
        rows.append(row)
    assert measured == ["float32"] * 3  # after each iteration's work
    assert rows[1]["device_flops"] == {
        "device": jax.devices()[0].device_kind,
        "dtype": "float32",
        "matmul_per_s": 0.4e9,
    }
    for r in rows:
        r["stage_seconds"] = {"fine-tune": 4.0}

    # A later summary, on a machine now busy: the rate stored during the run, not a new measurement.
    monkeypatch.setattr(flops, "device_matmul_rate", lambda dtype: 1e9)
    config = ConfigDict({"model": {"dtype": "float32"}})
    summary.print_time(config, rows)
    out = capsys.readouterr().out
    assert "matmul rate (2 GFLOP/s, measured during the run)" in out, out
    assert "fine-tune 12 s measured, 6 s FLOP-bound (50%)" in out, out
    # A run that predates the stored rate is measured now, and says so.
    old = [{k: v for k, v in r.items() if k != "device_flops"} for r in rows]
    assert summary.device_peak(config, old) == (
        1e9,
        "this device's float32 matmul rate (1 GFLOP/s, measured now: the run did not store it)",
    )
    # On an accelerator with a datasheet figure, that is the peak; the measured matmul is its GEMM efficiency.
    on_h100 = [dict(r, device_flops={**r["device_flops"], "device": "NVIDIA H100 80GB HBM3",
                                     "dtype": "bfloat16", "matmul_per_s": 6.5e14,
                                     "datasheet_per_s": 989e12}) for r in rows]  # fmt: skip
    peak, against = summary.device_peak(config, on_h100)
    assert peak == 989e12 and against == (
        "NVIDIA H100 80GB HBM3's datasheet bf16 peak (989 TFLOP/s; its bfloat16 matmul measured during the "
        "run: 650 TFLOP/s, 66% of it)"
    )


def test_each_compilation_is_logged_with_its_program_and_seconds():
    def a_program_only_this_test_compiles(x):
        return _long_to_compile(x) * 3

    timer = timing.StageTimer()
    with timer.stage("fine-tune"):
        f = jax.jit(a_program_only_this_test_compiles)
        f(jnp.arange(5.0)).block_until_ready()
        f(jnp.arange(6.0)).block_until_ready()  # another shape: compiled again
        f(jnp.arange(6.0)).block_until_ready()  # cached in the process: not compiled
    first = {}
    timer.iteration_done(first)
    name = "jit(a_program_only_this_test_compiles)"
    count, seconds = first["compile_log_seconds"][name]
    assert count == 2 and seconds > 0.1, first["compile_log_seconds"]
    second = {}
    timer.iteration_done(second)  # nothing compiled since
    assert name not in second["compile_log_seconds"]
    merged = timing.merged_compiles([first, second, {"compile_log_seconds": {name: [1, 1.0]}}])
    assert merged[name] == [3, seconds + 1.0]
    assert timing.describe_compiles({"jit(step)": [4, 31.2], "jit(decode)": [3, 12.0]}) == (
        "7 compilations, 43 s: jit(step) x4 31 s, jit(decode) x3 12 s"
    )
    # programs compiled for named shapes: one entry per program, and a line each saying for what
    shaped = {
        "jit(decode) [batch 32 x 24]": [1, 12.0],
        "jit(step) [batch 8 x 24]": [1, 20.4],
        "jit(step) [batch 8 x 40]": [2, 10.8],
        "jit(cast)": [5, 0.3],
        "jit(cast) [batch 8 x 24]": [1, 0.2],
    }
    assert timing.describe_compiles(shaped, top=2) == (
        "10 compilations, 44 s: jit(step) x3 31 s, jit(decode) x1 12 s, ..."
    )
    assert timing.describe_purposes(shaped) == [
        "jit(decode): batch 32 x 24 x1 12 s",
        "jit(step): batch 8 x 24 x1 20 s; batch 8 x 40 x2 11 s",
    ]
