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
    assert 0.1 <= seconds["load"] < 0.1 + 0.1, seconds
    assert 0.2 <= seconds["fine-tune"] < 0.2 + 0.1, seconds  # without the nested load and its compilation
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
