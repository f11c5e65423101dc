"""The run's compile accounting: a compilation in the background is logged by program, and counts as
compiling only for as long as the run waits for it."""

import time

import jax
import jax.numpy as jnp

from llm2llm_jax.common import compilations


def test_a_background_compilation_counts_only_the_wait_for_it():
    def polynomial_for_accounting(x):
        return jnp.sum(jnp.tanh(x @ x.T) ** 3)

    mark = compilations.compiled_mark()
    before, start = compilations.compile_seconds(), time.perf_counter()
    future = compilations.compile_in_background(
        lambda: jax.jit(polynomial_for_accounting).lower(jnp.ones((64, 64))).compile()
    )
    time.sleep(2.0)  # the run's own work meanwhile: the compilation is done long before it is waited for
    compiled = compilations.waited(future)
    counted, wall = compilations.compile_seconds() - before, time.perf_counter() - start
    assert float(compiled(jnp.ones((64, 64)))) > 0
    _, log = compilations.compiled_since(mark)
    count, seconds = log["jit(polynomial_for_accounting)"]
    assert count == 1 and wall > 2.0
    # the sleep overlapped the compilation: only the (short) wait counts, less than XLA's own seconds
    assert counted < 0.5 * seconds, (counted, seconds)


def test_a_compilation_in_the_run_counts_whole_and_a_background_failure_reaches_the_waiter():
    before = compilations.compile_seconds()
    jax.jit(lambda x: jnp.cumsum(jnp.sin(x)) * 7).lower(jnp.ones((33,))).compile()
    assert compilations.compile_seconds() > before

    def broken():
        raise RuntimeError("no such program")

    future = compilations.compile_in_background(broken)
    try:
        compilations.waited(future)
    except RuntimeError as e:
        assert "no such program" in str(e)
    else:
        raise AssertionError("the background failure was lost")
