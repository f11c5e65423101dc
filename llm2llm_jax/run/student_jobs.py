"""The run's student: loaded once (lazily: a finished run needs no weights), fine-tuned and evaluated per
iteration on the run's mesh, each job timed and its FLOPs counted through the run's hooks."""

from __future__ import annotations

from collections.abc import Sequence

from llm2llm_jax.common import parallel
from llm2llm_jax.common.console import say
from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.model.loading import load_from_config, model_name
from llm2llm_jax.run.hooks import Hook
from llm2llm_jax.run.results import fingerprint
from llm2llm_jax.student import prompting
from llm2llm_jax.student.predict import Predictor, compile_evaluation_ahead
from llm2llm_jax.student.recipe import hparams_from_config
from llm2llm_jax.student.train import finetune, trained_shapes


class StudentJobs:
    """model: optional (cfg, params, tokenizer) to use instead of loading config.model (tests, notebooks)."""

    def __init__(self, config, task, hooks: Hook, model=None, progress: bool = True):
        self.config, self.task, self.hooks, self.progress = config, task, hooks, progress
        self._model, self._mesh = model, None
        self._weights_id = None if model is not None else "config.model"  # a handed-in model is fingerprinted

    def mesh(self):
        if self._mesh is None:
            self._mesh = parallel.make_mesh(tuple(self.config.mesh))
        return self._mesh

    def model(self):
        """(cfg, params, tokenizer) of the base student, loaded on first use."""
        if self._model is None:
            with self.hooks.stage("load"):
                cfg, params, tok = load_from_config(
                    self.config.model, progress=self.progress, devices=self.mesh().devices.flat
                )
            # Training, evaluation and the local teacher all run on this mesh: resolve 'auto' for it once.
            self._model = cfg.with_kernels_for(self.mesh().devices.flat), params, tok
        return self._model

    def weights_id(self) -> str:
        """What names the base weights in a result's key: the config's model, or a digest of a handed-in
        one."""
        self._weights_id = self._weights_id or fingerprint(self._model)
        return self._weights_id

    def prompt_format(self) -> str:
        """'plain' or 'chat', data.prompt_format resolved against the student's tokenizer
        (student/prompting.py)."""
        return prompting.resolve(self.config.data.prompt_format, self.model()[2])

    def name(self) -> str:
        """The one string naming the student's checkpoint, as teacher.model would name it."""
        return model_name(self.config.model.source, self.config.model.path)

    def train(
        self, i: int, train_set: Sequence[dict], start: str, keep_trained: bool, checkpoint_dir: str, dev=()
    ):
        """(trained params, info) of iteration i's fine-tune on `train_set`, from the base weights or from the
        trained model checkpointed in `start`; `dev`: the examples that select its epoch
        (train.epoch_selection)."""
        cfg, base_params, tok = self.model()
        c = self.config
        with self.hooks.stage("fine-tune"):
            params, info = finetune(
                cfg,
                base_params,
                tok,
                self.task,
                train_set,
                hparams_from_config(c),
                self.mesh(),
                lora_seed=stable_seed(c.seed, "lora"),
                truncation=c.data.truncation,
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=c.train.checkpoint_every,
                checkpoint_minutes=c.train.checkpoint_minutes,
                fmt=self.prompt_format(),
                keep_trained=keep_trained,
                init_from=start,
                progress=self.progress,
                desc=f"iter {i} train",
                say=lambda m: say(f"iteration {i}: {m}"),
                on_step=lambda step, m: self.hooks.fine_tune_step(i, step, m),
                dev_set=dev,
            )
        self.hooks.computed("fine-tune", info.pop("flops"))
        return params, info

    def compile_evaluation_ahead(self, sets: Sequence[Sequence[dict]]) -> None:
        """Start compiling, in the background, the decoding program `evaluate` will run on these sets (in this
        order) with the weights a fine-tune is about to train, so that it compiles while they train (generate
        mode; score mode compiles at its first batch)."""
        (cfg, _, tok), c = self.model(), self.config
        if c.eval.mode != "generate":
            return
        fmt = self.prompt_format()
        prompts = [
            prompting.encode_all(self.task, s, tok, fmt, limit=c.data.max_length)[0] for s in sets if s
        ]
        mesh = self.mesh()
        compile_evaluation_ahead(
            cfg, trained_shapes(cfg, mesh), tok, c.eval.batch_size, prompts, c.eval.max_new_tokens, mesh=mesh
        )

    def evaluate(self, params, examples: Sequence[dict], desc: str) -> list[dict]:
        """One prediction row per example (generation, prediction, correct), in `eval.mode`."""
        (cfg, _, tok), e = self.model(), self.config.eval
        with self.hooks.stage("evaluation"):
            predictor = Predictor(cfg, params, tok, e.batch_size, mesh=self.mesh())
            rows = predictor.evaluate(
                self.task,
                examples,
                self.config.data.max_length,
                e.max_new_tokens,
                desc,
                self.progress,
                mode=e.mode,
                fmt=self.prompt_format(),
            )
        self.hooks.computed("evaluation", predictor.flops)
        return rows
