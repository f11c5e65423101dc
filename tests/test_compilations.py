"""The run's compile accounting: a compilation in the background is logged by program, and counts as
compiling only for as long as the run waits for it."""

import subprocess
import sys
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


def test_a_compilation_is_logged_with_what_it_was_compiled_for():
    def squares_for_the_log(x):
        return jnp.sum(x * x)

    mark = compilations.compiled_mark()
    with compilations.compiled_for("batch 2 x 8"):
        with compilations.compiled_for("inner"):
            jax.jit(squares_for_the_log).lower(jnp.ones((3,))).compile()
        jax.jit(squares_for_the_log).lower(jnp.ones((2, 8))).compile()  # the outer purpose is back
    jax.jit(squares_for_the_log).lower(jnp.ones((5,))).compile()
    future = compilations.compile_in_background(
        lambda: jax.jit(squares_for_the_log).lower(jnp.ones((7,))).compile(), "seven"
    )
    compilations.waited(future)
    _, log = compilations.compiled_since(mark)
    assert {name for name in log if "squares" in name} == {  # jnp.ones compiles programs of its own
        "jit(squares_for_the_log) [inner]",
        "jit(squares_for_the_log) [batch 2 x 8]",
        "jit(squares_for_the_log)",
        "jit(squares_for_the_log) [seven]",
    }, log


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


def test_a_process_that_ends_while_a_compilation_runs_exits_cleanly(tmp_path):
    """A run that stops before it needs a program compiled in the background (an error, Ctrl-C) ends with its
    own last words and status after the compilation has finished, rather than stopping it inside XLA (which
    can abort the process)."""
    marker = tmp_path / "compiled"
    script = f"""
import jax, jax.numpy as jnp
from llm2llm_jax.common import compilations

def unrolled(x):
    for i in range(400):
        x = jnp.sin(x @ x.T + i)
    return x

def compile_then_mark():
    compiled = jax.jit(unrolled).lower(jnp.ones((8, 8))).compile()
    open({str(marker)!r}, "w").write("compiled")
    return compiled

compilations.compile_in_background(compile_then_mark)
print("the run's last words", flush=True)
raise SystemExit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout == "the run's last words\n" and "terminate called" not in done.stderr
    assert marker.read_text() == "compiled"
