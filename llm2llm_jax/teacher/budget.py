"""What a run spends on its teacher: the ledger in the run directory (calls, tokens, dollars) and the caps on
it."""

from __future__ import annotations

import os
import threading

from llm2llm_jax.common.files import exists, read_json, write_json


class BudgetExceeded(RuntimeError):
    """The run's teacher budget is spent; the controller stops cleanly."""


SPEND_FILE = "teacher_spend.json"


def read_spend(run_dir: str) -> dict:
    """A run's teacher ledger ({} before its first paid call)."""
    path = os.path.join(run_dir, SPEND_FILE)
    return read_json(path) if exists(path) else {}


def describe_spend(spent: dict) -> str:
    """The ledger as people read it: calls, tokens (in and out) and, when prices are configured, dollars."""
    cost = f", ${spent['cost_usd']:.4f}" if spent.get("cost_usd") else ""
    return (
        f"{spent['calls']} calls, {spent['input_tokens'] + spent['output_tokens']} tokens "
        f"({spent['input_tokens']} in, {spent['output_tokens']} out{cost})"
    )


class Budget:
    """What a run spends on its teacher (thread-safe), and the caps on it: calls, tokens (input + output) and,
    where prices are configured, dollars.

    Attached to a file (`attach`), the spend is a ledger of the run, not of one invocation: it is read when
    the run starts and rewritten after every paid call, so a rerun counts what earlier invocations paid.
    """

    def __init__(
        self, max_calls: int = 0, max_tokens: int = 0, price_input: float = 0.0, price_output: float = 0.0
    ):
        self.max_calls, self.max_tokens = max_calls, max_tokens
        self.price_input, self.price_output = price_input, price_output  # USD per million tokens
        self.spent = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        self.in_flight = 0
        self.path = None
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return self.spent["calls"]

    @property
    def tokens(self) -> int:
        return self.spent["input_tokens"] + self.spent["output_tokens"]

    def attach(self, path: str) -> None:
        """Count from (and record into) the ledger at `path`."""
        with self._lock:
            self.path = path
            if exists(path):
                self.spent.update(read_json(path))

    def reserve(self) -> None:
        """Claim one call, or raise BudgetExceeded; concurrent workers cannot overshoot the caps."""
        with self._lock:
            if self.max_calls and self.calls + self.in_flight >= self.max_calls:
                raise BudgetExceeded(
                    f"teacher budget spent: {self.calls} of {self.max_calls} calls; this run has "
                    f"spent {describe_spend(self.spent)} (raise teacher.max_calls to continue)"
                )
            if self.max_tokens and self.tokens >= self.max_tokens:
                raise BudgetExceeded(
                    f"teacher budget spent: {self.tokens} of {self.max_tokens} tokens; this run has "
                    f"spent {describe_spend(self.spent)} (raise teacher.max_tokens to continue)"
                )
            self.in_flight += 1

    def release(self) -> None:
        """A reserved call that was not paid (it failed)."""
        with self._lock:
            self.in_flight -= 1

    def charge(self, input_tokens: int, output_tokens: int) -> None:
        """A reserved call that was paid: count it, and record the ledger before the answer is cached."""
        with self._lock:
            self.in_flight -= 1
            s = self.spent
            s["calls"] += 1
            s["input_tokens"] += int(input_tokens)
            s["output_tokens"] += int(output_tokens)
            s["cost_usd"] = round(
                s["cost_usd"] + (input_tokens * self.price_input + output_tokens * self.price_output) / 1e6, 6
            )
            if self.path:
                write_json(self.path, s)
