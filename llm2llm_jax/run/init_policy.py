"""Where each iteration's fine-tune starts (`train.init`): the base weights, the paper's choice, or the
previous iteration's model, the paper's ablation. The controller asks the policy, and only the policy, about
it."""

from __future__ import annotations

from llm2llm_jax.common.errors import ConfigError
from llm2llm_jax.run.layout import RunDirectory


class FromBase:
    """Every iteration fine-tunes the base weights: its result depends on its training set alone, so a result
    computed by another run of the same data (config.shared_results) can be read instead."""

    name = "base"
    keeps_trained = False  # nothing needs a fine-tune's trained model once it is evaluated
    shares_results = True

    def start(self, i: int, run_dir: RunDirectory) -> str:
        """The checkpoint directory iteration i's fine-tune starts from ('' for the base weights)."""
        return ""

    def describe_start(self, i: int, run_dir: RunDirectory) -> str:
        return "the base weights"

    def key_suffix(self, i: int, run_dir: RunDirectory) -> str:
        """What, besides the base weights, decides the result of iteration i's fine-tune."""
        return ""

    def model_needed_after(self, i: int, run_dir: RunDirectory) -> int | None:
        """The iteration whose trained model a later fine-tune starts from, once iteration i is done."""
        return None


class FromPrevious(FromBase):
    """Every iteration after the first continues the previous iteration's model (with a fresh optimizer and
    schedule), whose checkpoint is kept until the next one exists."""

    name = "previous"
    keeps_trained = True
    shares_results = False

    def start(self, i, run_dir):
        return run_dir.iter_path(run_dir.model_of(i - 1), "checkpoints") if i > 0 else ""

    def describe_start(self, i, run_dir):
        return f"iteration {run_dir.model_of(i - 1)}'s model" if i > 0 else "the base weights"

    def key_suffix(self, i, run_dir):
        if i == 0:
            return ""
        return "+" + run_dir.train_info(i - 1)["result_key"]  # the model it continues is part of the result

    def model_needed_after(self, i, run_dir):
        return run_dir.model_of(i)


INIT_POLICIES = {p.name: p for p in (FromBase(), FromPrevious())}


def init_policy(config) -> FromBase:
    """The policy `config.train.init` names, or one ConfigError line."""
    if config.train.init not in INIT_POLICIES:
        raise ConfigError(f"config.train.init={config.train.init!r}: choose one of {tuple(INIT_POLICIES)}")
    return INIT_POLICIES[config.train.init]
