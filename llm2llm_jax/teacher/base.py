"""The teacher's interface: its settings, a request, the errors a backend raises, and `Backend`, the shell
every backend shares.

Every backend gets the same shell: an on-disk cache checked before any call, a per-run budget of
calls and tokens checked before paying, retries with exponential backoff and jitter on 429, 5xx and
timeouts (tenacity, one policy for every backend), and a concurrency limit for the API backends.
A request may carry a JSON schema (structured outputs) and the same request asking for text: a server
that rejects the schema is told so once and answered from then on with text. A backend answers what a run
needs to know of it through class attributes (`supports_schema`, `supports_batch`, `paid`) and `check_model`.
"""

from __future__ import annotations

import dataclasses
import email.utils
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from llm2llm_jax.common.errors import UserError
from llm2llm_jax.teacher.budget import Budget
from llm2llm_jax.teacher.cache import DiskCache, cache_key


class TeacherError(UserError, RuntimeError):
    """A teacher call that cannot succeed by retrying (bad key, bad model name, bad request)."""


class TransientError(RuntimeError):
    """A call worth retrying: rate limit, server error, timeout, unreadable response body. `retry_after`:
    the seconds the server asked to wait (Retry-After, Gemini's RetryInfo), when it said."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """An HTTP Retry-After value (delay seconds or an HTTP date) or a protobuf duration ("30s", "1.5s") as
    seconds from now, or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value[:-1] if value.endswith("s") else value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class SchemaRejected(RuntimeError):
    """The server refused the request's JSON schema (structured outputs); the text form of the request is
    sent."""


def server_delay(state) -> float | None:
    """The delay the server asked for in the failed attempt of a tenacity retry `state`, if any."""
    error = state.outcome.exception() if state.outcome is not None else None
    return getattr(error, "retry_after", None)


@dataclasses.dataclass
class TeacherSettings:
    """How to reach the teacher; built from `config.teacher` (these defaults are the config's defaults)."""

    kind: str = "gemini"  # gemini | openai | local (a checkpoint run on this mesh): teacher/factory.py
    model: str = ""  # "" = the backend's default model
    temperature: float = 0.7
    top_p: float = 0.95
    max_output_tokens: int = 512
    concurrency: int = 8  # API calls in flight
    max_attempts: int = 6
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_server_delay: float = 120.0  # the longest wait a server's Retry-After / RetryInfo is granted
    timeout: float = 60.0
    max_calls: int = 0  # for the whole run, over every invocation; 0 = unlimited
    max_tokens: int = 0  # input + output, for the whole run; 0 = unlimited
    price_input: float = 0.0  # USD per million input tokens, for the spend record (0 = not counted)
    price_output: float = 0.0  # USD per million output tokens
    base_url: str = ""
    api_key_env: str = ""  # openai: which variable holds the key (default OPENAI_API_KEY)
    structured: bool = True  # send a JSON schema for the reply where the backend can (gemini, openai)
    batch: bool = False  # gemini, openai: one round's requests as one batch job (cheaper, slower)
    batch_poll_seconds: float = 30.0  # how often a batch job's state is read


@dataclasses.dataclass
class TeacherRequest:
    system: str
    turns: list  # [{"role": "user"|"assistant", "content": str}]
    seed: int
    schema: dict | None = None  # the JSON schema of a structured reply
    plain: TeacherRequest | None = None  # the same request asking for a text reply (schema refused, or none)

    def text_only(self) -> TeacherRequest:
        return self.plain if self.schema is not None and self.plain is not None else self

    def prompt_text(self) -> str:
        """Everything the teacher reads, as one text (token estimates)."""
        return "\n\n".join([self.system] + [t["content"] for t in self.turns])


class Backend:
    """Cache + budget + retries around one backend's `_call(request) -> (text, input tokens, output tokens)`.

    supports_schema: `_call` sends a request's schema (structured outputs); supports_batch: the backend has a
    batch API (teacher/batch.py's `BatchJobs`); paid: its calls cost money (the estimate offers prices)."""

    kind = "base"
    supports_schema = False
    supports_batch = False
    paid = False
    flops = 0.0  # computed on this process's devices: a local model's (a remote teacher computes elsewhere)

    def __init__(
        self, settings: TeacherSettings, cache: DiskCache | None = None, budget: Budget | None = None
    ):
        self.settings = settings
        self.cache = cache
        self.budget = budget or Budget(
            settings.max_calls, settings.max_tokens, settings.price_input, settings.price_output
        )
        self.stats = {"calls": 0, "cached": 0, "retries": 0}
        self._stats_lock = threading.Lock()
        self.schema_refused = ""  # the server's reason, once it has refused a schema
        self.batch_dir = ""  # where batch jobs in flight are recorded (the run directory's teacher_batches/)
        self.say = print
        self.sleep = time.sleep  # between retries (tests record the waits instead)

    @property
    def structured(self) -> bool:
        """Whether requests are sent with their JSON schema."""
        return self.settings.structured and self.supports_schema and not self.schema_refused

    def form(self, request: TeacherRequest) -> TeacherRequest:
        """The form of `request` that is sent: with its schema while structured outputs are on, else as
        text."""
        return request if self.structured and request.schema is not None else request.text_only()

    def key(self, request: TeacherRequest) -> str:
        s = self.settings
        parts = dict(
            backend=self.kind,
            model=s.model,
            system=request.system,
            turns=request.turns,
            temperature=s.temperature,
            top_p=s.top_p,
            max_output_tokens=s.max_output_tokens,
            seed=request.seed,
        )
        if request.schema is not None:
            parts["schema"] = request.schema
        return cache_key(**parts)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] = self.stats.get(name, 0) + 1

    def cached(self, request: TeacherRequest) -> str | None:
        """The cached answer to the form of `request` that would be sent, or None."""
        if self.cache is None:
            return None
        hit = self.cache.get(self.key(self.form(request)))
        if hit is None:
            return None
        self._count("cached")
        return hit["text"]

    def record(self, request: TeacherRequest, text: str, input_tokens: int, output_tokens: int) -> None:
        """A paid answer (its call reserved): counted in the ledger first, then cached."""
        self._count("calls")
        self.budget.charge(input_tokens, output_tokens)
        if self.cache is not None:
            self.cache.put(
                self.key(request),
                {"text": text, "input_tokens": input_tokens, "output_tokens": output_tokens},
            )

    def refuse_schema(self, reason: str) -> None:
        if not self.schema_refused:
            self.schema_refused = reason or "refused"
            self.say(
                f"the {self.kind} teacher refused the reply's JSON schema ({reason[:200]}); asking for text "
                f"replies from now on (teacher.structured=False skips the schema)"
            )

    def complete(self, request: TeacherRequest) -> str:
        hit = self.cached(request)
        if hit is not None:
            return hit
        sent = self.form(request)
        self.budget.reserve()
        s = self.settings

        def before_retry(state):
            self._count("retries")
            if server_delay(state) is not None:
                self._count("server_delayed")

        backoff = wait_random_exponential(multiplier=s.initial_delay, max=s.max_delay)

        def wait(state):
            """The server's own delay when it gave one (capped by teacher.max_server_delay), else backoff."""
            asked = server_delay(state)
            return backoff(state) if asked is None else min(asked, s.max_server_delay)

        caller = retry(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(s.max_attempts),
            wait=wait,
            before_sleep=before_retry,
            sleep=self.sleep,
            reraise=True,
        )(self._call)
        try:
            text, input_tokens, output_tokens = caller(sent)
        except SchemaRejected as e:
            self.budget.release()
            self.refuse_schema(str(e))
            return self.complete(request)
        except TransientError as e:
            self.budget.release()
            raise TeacherError(f"{self.kind} teacher failed after {s.max_attempts} attempts: {e}") from None
        except BaseException:
            self.budget.release()
            raise
        self.record(sent, text, input_tokens, output_tokens)
        return text

    def complete_many(self, requests: Sequence[TeacherRequest]) -> list[str]:
        """Answers in request order, at most `concurrency` calls in flight (a backend with a batch API sends
        them as one batch job instead: teacher/batch.py)."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(self.complete, requests))

    def _call(self, request: TeacherRequest) -> tuple[str, int, int]:
        raise NotImplementedError

    def expect(self, requests: Sequence[TeacherRequest]) -> None:
        """The requests a run may send (one per candidate parent), told before any is sent: a backend that
        compiles a program per request shape prepares one that holds them all. Nothing is sent or spent;
        a server backend has nothing to prepare."""

    def count_input_tokens(self, request: TeacherRequest) -> tuple[int, str]:
        """(input tokens of `request`, how they were counted): an estimate of four characters per token unless
        the backend can count exactly."""
        return max(1, len(request.prompt_text()) // 4), "about 4 characters per token"

    def check_reachable(self) -> None:
        """A cheap request (no generation) that fails with one TeacherError line when the teacher cannot be
        used: unreachable URL, rejected key, unknown model. Backends without a server have nothing to
        check."""

    @classmethod
    def check_model(cls, name: str) -> str:
        """What is wrong with `teacher.model` = `name` for this backend, checked before any work ('' when
        nothing
        can be checked here: a server's models are checked by `check_reachable`)."""
        return ""


def network_errors() -> tuple:
    """Timeout and transport exception types of httpx and of httpx2 (which google-genai uses)."""
    found = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found += [module.TimeoutException, module.TransportError]
    return tuple(found) or (OSError,)


def mentions_schema(message: str) -> bool:
    text = (message or "").lower()
    return any(
        word in text
        for word in (
            "schema",
            "response_format",
            "responseformat",
            "response_mime_type",
            "responsemimetype",
            "json mode",
            "guided",
        )
    )
