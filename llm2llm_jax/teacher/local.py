"""The local teacher: a checkpoint of a supported family sampled on this mesh with the student engine's
decoding."""

from __future__ import annotations

import os

import jax

from llm2llm_jax.model.loading import OFFLINE, load_pretrained, source_of
from llm2llm_jax.student.predict import Predictor
from llm2llm_jax.student.prompting import leading_special_ids
from llm2llm_jax.teacher.base import Backend, TeacherRequest

# teacher.model values that name the run's own student (its untrained base weights).
STUDENT = ("", "student")
# Prompt widths and the prefix every prompt shares are rounded to this many tokens: few compiled shapes.
SHAPE_MULTIPLE = 32


class LocalBackend(Backend):
    """A checkpoint of a supported family sampled with this project's decode: the student's base model, or
    the one `teacher.model` names (an offline name such as smollm2 or gemma3_270m, a .gguf file, an HF
    directory)."""

    kind = "local"

    def __init__(self, settings, cache=None, budget=None, model=None, batch_size: int = 16):
        super().__init__(settings, cache, budget)
        if model is None:
            named = "smollm2" if settings.model in STUDENT else settings.model
            model = load_pretrained(*source_of(named), progress=False)
        cfg, params, self.tokenizer = model
        self.predictor = Predictor(cfg, params, self.tokenizer, batch_size, pad_multiple=SHAPE_MULTIPLE)
        self.settings.model = settings.model or "smollm2"
        self.batch_size = batch_size
        self.expected = None  # (prefix ids, (prefix, width)) of the requests a run said it may send

    def _prompt(self, request: TeacherRequest) -> str:
        messages = [{"role": "system", "content": request.system}] + list(request.turns)
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def count_input_tokens(self, request):
        return len(self._encode(request.text_only())), "counted by the local tokenizer"

    def _encode(self, request: TeacherRequest) -> list[int]:
        ids = self.tokenizer(self._prompt(request), add_special_tokens=False)["input_ids"]
        # a chat template writes its own BOS; plain text gets the one the tokenizer adds (Gemma's)
        return ids if self.tokenizer.chat_template else leading_special_ids(self.tokenizer) + ids

    def expect(self, requests):
        """One decode shape for every request the run may send (their shared prefix, their widest rest),
        compiled now in the background: each later call whose prompts fit it runs that program, so a run
        compiles one teacher program, before its first teacher call needs it."""
        if self.expected is not None or not requests:
            return
        s = self.settings
        encoded = [self._encode(self.form(r)) for r in requests]
        shape = self._own_shape(encoded)
        self.expected = (tuple(encoded[0][: shape[0]]), shape)
        self.predictor.compile_ahead(shape, s.max_output_tokens, s.temperature, s.top_p, sampled=True)

    def _shape(self, encoded: list[list[int]]) -> tuple[int, int]:
        """The expected shape when these prompts fit it, else their own."""
        if self.expected is not None:
            prefix, (shared, width) = self.expected
            if all(tuple(e[:shared]) == prefix and 0 < len(e) - shared <= width for e in encoded):
                return shared, width
        return self._own_shape(encoded)

    def _own_shape(self, encoded: list[list[int]]) -> tuple[int, int]:
        """These prompts' shared prefix and widest rest, for sampling at the settings (`decode_shape`)."""
        s = self.settings
        return self.predictor.decode_shape(
            encoded, s.max_output_tokens, s.temperature, s.top_p, True, SHAPE_MULTIPLE
        )

    def complete_many(self, requests):
        """Cached answers first; the rest decoded in batches with one PRNG key per request (its seed)."""
        answers: list = [None] * len(requests)
        todo = []
        for i, r in enumerate(requests):
            hit = self.cached(r)
            if hit is not None:
                answers[i] = hit
            else:
                todo.append(i)
        if not todo:
            return answers
        s = self.settings
        sent = {i: self.form(requests[i]) for i in todo}
        encoded = {i: self._encode(sent[i]) for i in todo}
        # Every prompt begins with the same rules and worked example: read once per batch. One shape for
        # all the batches (their shared prefix, their widest rest), so they run one compiled program.
        shape = self._shape(list(encoded.values()))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for _ in chunk:
                self.budget.reserve()
            decoded = self.predictor.generate(
                [encoded[i] for i in chunk],
                s.max_output_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                rngs=[jax.random.PRNGKey(sent[i].seed) for i in chunk],
                shape=shape,
            )
            for i, (text, n_tokens) in zip(chunk, decoded):
                answers[i] = text
                self.record(sent[i], text, len(encoded[i]), n_tokens)
        return answers

    def complete(self, request):
        return self.complete_many([request])[0]

    @property
    def flops(self) -> float:
        """FLOPs of every batch decoded so far on this process's devices (llm2llm_jax/student/flops.py)."""
        return self.predictor.flops

    @classmethod
    def check_model(cls, name) -> str:
        if isinstance(name, str) and (name in STUDENT or _model_exists(name)):
            return ""
        return (
            f"name the student ('' or 'student'), an offline model ({', '.join(OFFLINE)}), a .gguf file or "
            f"an HF model directory that exists"
        )

    @staticmethod
    def samples_student(model: str, student_name: str) -> bool:
        """`teacher.model` names the run's student: its base weights, already loaded, are sampled."""
        return model in STUDENT or model == student_name


def _model_exists(name: str) -> bool:
    source, path = source_of(name)
    return source in OFFLINE or (os.path.isfile(path) if source == "gguf" else os.path.isdir(path))
