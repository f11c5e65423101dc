"""Teacher backends behind one interface: gemini (google-genai), openai (the openai SDK against any
chat-completions server), local (Flax Llama).

Every backend gets the same shell: an on-disk cache checked before any call, a per-run budget of
calls and tokens checked before paying, retries with exponential backoff and jitter on 429, 5xx and
timeouts (tenacity, one policy for every backend), and a concurrency limit for the API backends.
A request may carry a JSON schema (structured outputs) and the same request asking for text: a server
that rejects the schema is told so once and answered from then on with text. With `batch`, the API
backends send one round's uncached requests as one batch job (llm2llm_jax/teacher/batch.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from llm2llm_jax.errors import UserError
from llm2llm_jax.teacher.cache import DiskCache, cache_key


class TeacherError(UserError, RuntimeError):
    """A teacher call that cannot succeed by retrying (bad key, bad model name, bad request)."""


class TransientError(RuntimeError):
    """A call worth retrying: rate limit, server error, timeout, unreadable response body."""


class BudgetExceeded(RuntimeError):
    """The run's teacher budget is spent; the controller stops cleanly."""


class SchemaRejected(RuntimeError):
    """The server refused the request's JSON schema (structured outputs); the text form of the request is sent."""


@dataclasses.dataclass
class TeacherSettings:
    """How to reach the teacher; built from `config.teacher` (these defaults are the config's defaults)."""

    kind: str = "gemini"  # gemini | openai | local (a Llama checkpoint on this mesh) | scripted (tests)
    model: str = ""  # "" = the backend's default model
    temperature: float = 0.7
    top_p: float = 0.95
    max_output_tokens: int = 512
    concurrency: int = 8  # API calls in flight
    max_attempts: int = 6
    initial_delay: float = 1.0
    max_delay: float = 30.0
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
    schema: Optional[dict] = None  # the JSON schema of a structured reply
    plain: Optional["TeacherRequest"] = None  # the same request asking for a text reply (schema refused, or none)

    def text_only(self) -> "TeacherRequest":
        return self.plain if self.schema is not None and self.plain is not None else self

    def prompt_text(self) -> str:
        """Everything the teacher reads, as one text (token estimates)."""
        return "\n\n".join([self.system] + [t["content"] for t in self.turns])


SPEND_FILE = "teacher_spend.json"


def read_spend(run_dir: str) -> dict:
    """A run's teacher ledger ({} before its first paid call)."""
    from llm2llm_jax.files import exists, read_json

    path = os.path.join(run_dir, SPEND_FILE)
    return read_json(path) if exists(path) else {}


def describe_spend(spent: dict) -> str:
    """The ledger as people read it: calls, tokens (in and out) and, when prices are configured, dollars."""
    cost = f", ${spent['cost_usd']:.4f}" if spent.get("cost_usd") else ""
    return (f"{spent['calls']} calls, {spent['input_tokens'] + spent['output_tokens']} tokens "
            f"({spent['input_tokens']} in, {spent['output_tokens']} out{cost})")


class Budget:
    """What a run spends on its teacher (thread-safe), and the caps on it: calls, tokens (input + output) and,
    where prices are configured, dollars.

    Attached to a file (`attach`), the spend is a ledger of the run, not of one invocation: it is read when
    the run starts and rewritten after every paid call, so a rerun counts what earlier invocations paid.
    """

    def __init__(self, max_calls: int = 0, max_tokens: int = 0, price_input: float = 0.0, price_output: float = 0.0):
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
        from llm2llm_jax.files import exists, read_json

        with self._lock:
            self.path = path
            if exists(path):
                self.spent.update(read_json(path))

    def reserve(self) -> None:
        """Claim one call, or raise BudgetExceeded; concurrent workers cannot overshoot the caps."""
        with self._lock:
            if self.max_calls and self.calls + self.in_flight >= self.max_calls:
                raise BudgetExceeded(f"teacher budget spent: {self.calls} of {self.max_calls} calls; this run has "
                                     f"spent {describe_spend(self.spent)} (raise teacher.max_calls to continue)")
            if self.max_tokens and self.tokens >= self.max_tokens:
                raise BudgetExceeded(f"teacher budget spent: {self.tokens} of {self.max_tokens} tokens; this run has "
                                     f"spent {describe_spend(self.spent)} (raise teacher.max_tokens to continue)")
            self.in_flight += 1

    def release(self) -> None:
        """A reserved call that was not paid (it failed)."""
        with self._lock:
            self.in_flight -= 1

    def charge(self, input_tokens: int, output_tokens: int) -> None:
        """A reserved call that was paid: count it, and record the ledger before the answer is cached."""
        from llm2llm_jax.files import write_json

        with self._lock:
            self.in_flight -= 1
            s = self.spent
            s["calls"] += 1
            s["input_tokens"] += int(input_tokens)
            s["output_tokens"] += int(output_tokens)
            s["cost_usd"] = round(s["cost_usd"] + (input_tokens * self.price_input
                                                   + output_tokens * self.price_output) / 1e6, 6)
            if self.path:
                write_json(self.path, s)


class Backend:
    """Cache + budget + retries around one backend's `_call(request) -> (text, input tokens, output tokens)`.

    supports_schema: `_call` sends a request's schema (structured outputs); supports_batch: the backend has a
    batch API (`_batch_submit`, `_batch_state`, `_batch_results`)."""

    kind = "base"
    supports_schema = False
    supports_batch = False
    flops = 0.0  # computed on this process's devices: a local model's (a remote teacher computes elsewhere)

    def __init__(self, settings: TeacherSettings, cache: Optional[DiskCache] = None, budget: Optional[Budget] = None):
        self.settings = settings
        self.cache = cache
        self.budget = budget or Budget(settings.max_calls, settings.max_tokens, settings.price_input,
                                       settings.price_output)
        self.stats = {"calls": 0, "cached": 0, "retries": 0}
        self._stats_lock = threading.Lock()
        self.schema_refused = ""  # the server's reason, once it has refused a schema
        self.batch_dir = ""  # where batch jobs in flight are recorded (the run directory's teacher_batches/)
        self.say = print

    @property
    def structured(self) -> bool:
        """Whether requests are sent with their JSON schema."""
        return self.settings.structured and self.supports_schema and not self.schema_refused

    def form(self, request: TeacherRequest) -> TeacherRequest:
        """The form of `request` that is sent: with its schema while structured outputs are on, else as text."""
        return request if self.structured and request.schema is not None else request.text_only()

    def key(self, request: TeacherRequest) -> str:
        s = self.settings
        parts = dict(backend=self.kind, model=s.model, system=request.system, turns=request.turns,
                     temperature=s.temperature, top_p=s.top_p, max_output_tokens=s.max_output_tokens,
                     seed=request.seed)
        if request.schema is not None:
            parts["schema"] = request.schema
        return cache_key(**parts)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def cached(self, request: TeacherRequest) -> Optional[str]:
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
            self.cache.put(self.key(request), {"text": text, "input_tokens": input_tokens,
                                               "output_tokens": output_tokens})

    def refuse_schema(self, reason: str) -> None:
        if not self.schema_refused:
            self.schema_refused = reason or "refused"
            self.say(f"the {self.kind} teacher refused the reply's JSON schema ({reason[:200]}); asking for text "
                     f"replies from now on (teacher.structured=False skips the schema)")

    def complete(self, request: TeacherRequest) -> str:
        hit = self.cached(request)
        if hit is not None:
            return hit
        sent = self.form(request)
        self.budget.reserve()
        s = self.settings

        def before_retry(state):
            self._count("retries")

        caller = retry(retry=retry_if_exception_type(TransientError), stop=stop_after_attempt(s.max_attempts),
                       wait=wait_random_exponential(multiplier=s.initial_delay, max=s.max_delay),
                       before_sleep=before_retry, reraise=True)(self._call)
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
        """Answers in request order: with `batch`, the uncached ones as one batch job; otherwise at most
        `concurrency` calls in flight."""
        if not requests:
            return []
        if self.settings.batch and self.supports_batch:
            from llm2llm_jax.teacher.batch import complete_as_batch

            return complete_as_batch(self, requests)
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(self.complete, requests))

    def _call(self, request: TeacherRequest) -> tuple[str, int, int]:
        raise NotImplementedError

    def count_input_tokens(self, request: TeacherRequest) -> tuple[int, str]:
        """(input tokens of `request`, how they were counted): an estimate of four characters per token unless
        the backend can count exactly."""
        return max(1, len(request.prompt_text()) // 4), "about 4 characters per token"

    def check_reachable(self) -> None:
        """A cheap request (no generation) that fails with one TeacherError line when the teacher cannot be
        used: unreachable URL, rejected key, unknown model. Backends without a server have nothing to check."""


def _network_errors() -> tuple:
    """Timeout and transport exception types of httpx and of httpx2 (which google-genai uses)."""
    found = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found += [module.TimeoutException, module.TransportError]
    return tuple(found) or (OSError,)


# ---------------------------------------------------------------------------- gemini
_GEMINI_TERMINAL = {"JOB_STATE_SUCCEEDED": "succeeded", "JOB_STATE_FAILED": "failed",
                    "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_EXPIRED": "expired"}


def _mentions_schema(message: str) -> bool:
    text = (message or "").lower()
    return any(word in text for word in ("schema", "response_format", "responseformat", "response_mime_type",
                                         "responsemimetype", "json mode", "guided"))


def gemini_schema(schema):
    """A JSON schema in the OpenAPI subset of Gemini's response_schema, which has no additionalProperties."""
    if isinstance(schema, dict):
        return {k: gemini_schema(v) for k, v in schema.items() if k != "additionalProperties"}
    if isinstance(schema, list):
        return [gemini_schema(v) for v in schema]
    return schema


class GeminiBackend(Backend):
    kind = "gemini"
    supports_schema = True
    supports_batch = True

    def __init__(self, settings, cache=None, budget=None):
        super().__init__(settings, cache, budget)
        from google import genai
        from google.genai import types

        key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not key:
            raise TeacherError("teacher.kind='gemini' needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)")
        self.settings.model = settings.model or "gemini-2.5-flash"
        http = types.HttpOptions(base_url=settings.base_url or None, timeout=int(settings.timeout * 1000),
                                 retry_options=types.HttpRetryOptions(attempts=1))  # we retry ourselves
        self.client = genai.Client(api_key=key, http_options=http)
        self.types = types
        self.url = settings.base_url or "https://generativelanguage.googleapis.com"

    def _contents(self, request):
        t = self.types
        return [t.Content(role="model" if m["role"] == "assistant" else "user", parts=[t.Part(text=m["content"])])
                for m in request.turns]

    def _config(self, request):
        s = self.settings
        extra = {}
        if request.schema is not None:
            extra = dict(response_mime_type="application/json", response_schema=gemini_schema(request.schema))
        return self.types.GenerateContentConfig(system_instruction=request.system, temperature=s.temperature,
                                                top_p=s.top_p, max_output_tokens=s.max_output_tokens,
                                                seed=request.seed, candidate_count=1, **extra)

    def _api_error(self, e, request, what: str = "gemini"):
        if e.code == 429 or (e.code or 0) >= 500:
            return TransientError(f"HTTP {e.code}: {e.message}")
        if e.code == 400 and request is not None and request.schema is not None and _mentions_schema(e.message):
            return SchemaRejected(f"HTTP 400: {e.message}")
        return TeacherError(f"{what} HTTP {e.code}: {e.message}")

    @staticmethod
    def _usage(resp) -> tuple[int, int]:
        usage = resp.usage_metadata
        if usage is None:
            return 0, 0
        return usage.prompt_token_count or 0, usage.candidates_token_count or 0

    def _call(self, request):
        from google.genai import errors

        try:
            resp = self.client.models.generate_content(model=self.settings.model, contents=self._contents(request),
                                                       config=self._config(request))
        except errors.APIError as e:
            raise self._api_error(e, request) from None
        except _network_errors() as e:
            raise TransientError(f"{type(e).__name__}: {e}") from None
        except ValueError as e:  # unreadable response body
            raise TransientError(f"unreadable response: {e}") from None
        return (resp.text or "", *self._usage(resp))

    def count_input_tokens(self, request):
        """The model's own count (the countTokens method), the system prompt read as a first turn."""
        from google.genai import errors

        t = self.types
        contents = [t.Content(role="user", parts=[t.Part(text=request.system)])] + self._contents(request)
        try:
            counted = self.client.models.count_tokens(model=self.settings.model, contents=contents)
        except (errors.APIError, *_network_errors()):
            return super().count_input_tokens(request)
        return int(counted.total_tokens or 0), "counted by the gemini API"

    def check_reachable(self):
        from google.genai import errors

        try:
            self.client.models.get(model=self.settings.model)
        except errors.APIError as e:
            raise TeacherError(f"the gemini teacher at {self.url} refused a check of model "
                               f"{self.settings.model!r}: HTTP {e.code} {e.message} (check teacher.model and the "
                               f"API key)") from None
        except _network_errors() as e:
            raise TeacherError(f"cannot reach the gemini teacher at {self.url} ({type(e).__name__}: "
                               f"{str(e)[:200]}); check teacher.base_url and the network") from None

    # -- the Batch API (inlined requests)
    def _batch_submit(self, requests, keys):
        from google.genai import errors

        src = [{"contents": self._contents(r), "config": self._config(r), "metadata": {"key": k}}
               for r, k in zip(requests, keys)]
        try:
            job = self.client.batches.create(model=self.settings.model, src=src,
                                             config={"display_name": f"llm2llm-{keys[0][:12]}"})
        except errors.APIError as e:
            raise self._api_error(e, None, "gemini batch submission") from None
        except _network_errors() as e:
            raise TeacherError(f"cannot submit the gemini batch job to {self.url} ({type(e).__name__}: {e}); "
                               f"rerun the same command to try again") from None
        return job.name

    def _batch_state(self, job_id):
        from google.genai import errors

        try:
            job = self.client.batches.get(name=job_id)
        except errors.APIError as e:
            if e.code == 429 or (e.code or 0) >= 500:
                return "pending", f"HTTP {e.code}"
            raise TeacherError(f"gemini batch job {job_id}: HTTP {e.code} {e.message}") from None
        except _network_errors() as e:
            return "pending", f"{type(e).__name__}"
        state = job.state.name if hasattr(job.state, "name") else str(job.state)
        message = getattr(job, "error", None)
        return _GEMINI_TERMINAL.get(state, "pending"), (str(message) if message else state)

    def _batch_results(self, job_id, requests, keys):
        job = self.client.batches.get(name=job_id)
        responses = (job.dest.inlined_responses or []) if job.dest is not None else []
        by_key = {}
        for n, item in enumerate(responses):
            key = (item.metadata or {}).get("key") if item.metadata else None
            key = key or (keys[n] if n < len(keys) else None)
            if item.error is not None or item.response is None:
                by_key[key] = f"error: {item.error}"
            else:
                by_key[key] = (item.response.text or "", *self._usage(item.response))
        return [by_key.get(k, "error: no response in the batch output") for k in keys]


# ---------------------------------------------------------------------------- openai-compatible
_OPENAI_TERMINAL = {"completed": "succeeded", "failed": "failed", "expired": "expired", "cancelled": "cancelled",
                    "cancelling": "cancelled"}


class OpenAIBackend(Backend):
    """Any chat-completions server (OpenAI, vLLM, llama.cpp, ...) through the official openai SDK."""

    kind = "openai"
    supports_schema = True
    supports_batch = True

    def __init__(self, settings, cache=None, budget=None):
        super().__init__(settings, cache, budget)
        import openai

        self.base_url = (settings.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        env = settings.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(env, "")
        if not key and "api.openai.com" in self.base_url:
            raise TeacherError(f"teacher.kind='openai' against {self.base_url} needs an API key: set {env}")
        self.settings.model = settings.model or "gpt-4o-mini"
        # Local servers (vLLM, llama.cpp) often take no key; the SDK needs one, so a placeholder is sent there.
        self.client = openai.OpenAI(api_key=key or "no-key", base_url=self.base_url, timeout=settings.timeout,
                                    max_retries=0)  # one retry policy for every backend: Backend.complete's
        self.openai = openai

    def _body(self, request) -> dict:
        s = self.settings
        body = {"model": s.model, "messages": [{"role": "system", "content": request.system}] + list(request.turns),
                "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_output_tokens,
                "seed": request.seed}
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "reply", "schema": request.schema, "strict": True}}
        return body

    def _error(self, e, request, what: str):
        o = self.openai
        if isinstance(e, (o.APITimeoutError, o.APIConnectionError)):
            return TransientError(f"{type(e).__name__}: {e}")
        if isinstance(e, o.APIResponseValidationError):
            return TransientError(f"unreadable response: {e}")
        status = getattr(e, "status_code", None)
        if status == 429 or (status or 0) >= 500:
            return TransientError(f"HTTP {status}: {str(e)[:200]}")
        message = str(getattr(e, "message", e))
        if status in (400, 422) and request is not None and request.schema is not None and _mentions_schema(message):
            return SchemaRejected(f"HTTP {status}: {message}")
        return TeacherError(f"{what} HTTP {status} from {self.base_url}: {message[:300]}")

    def _call(self, request):
        try:
            resp = self.client.chat.completions.create(**self._body(request))
        except self.openai.OpenAIError as e:
            raise self._error(e, request, "openai") from None
        except ValueError as e:  # a body that is not JSON
            raise TransientError(f"unreadable response: {e}") from None
        return self._read_completion(resp)

    @staticmethod
    def _read_completion(resp) -> tuple[str, int, int]:
        try:
            text = resp.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError) as e:
            raise TransientError(f"unreadable response ({type(e).__name__}): {str(resp)[:200]}") from None
        usage = resp.usage
        return text, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)

    def check_reachable(self):
        o = self.openai
        try:
            self.client.models.list()
        except (o.AuthenticationError, o.PermissionDeniedError) as e:
            raise TeacherError(f"the openai teacher at {self.base_url} rejected the API key (HTTP "
                               f"{e.status_code}); check ${self.settings.api_key_env or 'OPENAI_API_KEY'}") from None
        except (o.APITimeoutError, o.APIConnectionError) as e:
            cause = e.__cause__ or e  # the transport's own error says more than the SDK's "Connection error."
            raise TeacherError(f"cannot reach the openai teacher at {self.base_url} ({type(cause).__name__}: "
                               f"{str(cause)[:200]}); check teacher.base_url and that the server is running") from None
        except o.OpenAIError:
            pass  # servers without a model list (some local ones) are checked by their first request

    # -- the Batch API (a JSONL file of requests, one batch over it, a JSONL file of results)
    def _batch_submit(self, requests, keys):
        lines = [json.dumps({"custom_id": k, "method": "POST", "url": "/v1/chat/completions", "body": self._body(r)})
                 for r, k in zip(requests, keys)]
        try:
            uploaded = self.client.files.create(file=("llm2llm_batch.jsonl", ("\n".join(lines) + "\n").encode()),
                                                purpose="batch")
            job = self.client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                             completion_window="24h", metadata={"source": "llm2llm_jax"})
        except self.openai.OpenAIError as e:
            error = self._error(e, None, "openai batch submission")
            raise TeacherError(f"{error}; rerun the same command to try again") from None
        return job.id

    def _batch_state(self, job_id):
        try:
            job = self.client.batches.retrieve(job_id)
        except self.openai.OpenAIError as e:
            error = self._error(e, None, f"openai batch job {job_id}")
            if isinstance(error, TransientError):
                return "pending", str(error)
            raise error from None
        state = _OPENAI_TERMINAL.get(job.status, "pending")
        message = job.status
        errors = getattr(getattr(job, "errors", None), "data", None) or []
        if errors:
            message += ": " + "; ".join(str(getattr(x, "message", x)) for x in errors[:3])
        if state == "succeeded" and not job.output_file_id:
            state, message = "failed", "completed without an output file"
        return state, message

    def _batch_results(self, job_id, requests, keys):
        job = self.client.batches.retrieve(job_id)
        by_key = {}
        for line in self.client.files.content(job.output_file_id).text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            response = row.get("response") or {}
            if row.get("error") or response.get("status_code", 200) >= 400:
                by_key[row.get("custom_id")] = f"error: {row.get('error') or response.get('body')}"
                continue
            body = response.get("body") or {}
            try:
                text = body["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError):
                by_key[row.get("custom_id")] = f"error: unreadable result {str(body)[:200]}"
                continue
            usage = body.get("usage") or {}
            by_key[row.get("custom_id")] = (text, int(usage.get("prompt_tokens", 0)),
                                            int(usage.get("completion_tokens", 0)))
        return [by_key.get(k, "error: no result in the batch output") for k in keys]


# ---------------------------------------------------------------------------- local Flax Llama
class LocalBackend(Backend):
    """A checkpoint of a supported family sampled with this project's decode: the student's base model, or
    the one `teacher.model` names (an offline name such as smollm2 or gemma3_270m, a .gguf file, an HF
    directory)."""

    kind = "local"

    def __init__(self, settings, cache=None, budget=None, model=None, batch_size: int = 16):
        super().__init__(settings, cache, budget)
        if model is None:
            from llm2llm_jax.model.loading import load_pretrained, source_of

            named = "smollm2" if settings.model in ("", "student") else settings.model
            model = load_pretrained(*source_of(named), progress=False)
        from llm2llm_jax.predict import Predictor

        cfg, params, self.tokenizer = model
        self.predictor = Predictor(cfg, params, self.tokenizer, batch_size, pad_multiple=32)
        self.settings.model = settings.model or "smollm2"
        self.batch_size = batch_size

    def _prompt(self, request: TeacherRequest) -> str:
        messages = [{"role": "system", "content": request.system}] + list(request.turns)
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def count_input_tokens(self, request):
        return len(self._encode(request.text_only())), "counted by the local tokenizer"

    def _encode(self, request: TeacherRequest) -> list[int]:
        from llm2llm_jax.prompting import leading_special_ids

        ids = self.tokenizer(self._prompt(request), add_special_tokens=False)["input_ids"]
        # a chat template writes its own BOS; plain text gets the one the tokenizer adds (Gemma's)
        return ids if self.tokenizer.chat_template else leading_special_ids(self.tokenizer) + ids

    def complete_many(self, requests):
        """Cached answers first; the rest decoded in batches with one PRNG key per request (its seed)."""
        import jax

        answers: list = [None] * len(requests)
        todo = []
        for i, r in enumerate(requests):
            hit = self.cached(r)
            if hit is not None:
                answers[i] = hit
            else:
                todo.append(i)
        s = self.settings
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for _ in chunk:
                self.budget.reserve()
            sent = [self.form(requests[i]) for i in chunk]
            encoded = [self._encode(r) for r in sent]
            # Every prompt begins with the same rules and worked example: read once per batch.
            decoded = self.predictor.generate(encoded, s.max_output_tokens, temperature=s.temperature, top_p=s.top_p,
                                              rngs=[jax.random.PRNGKey(r.seed) for r in sent],
                                              prefix_multiple=32)
            for i, request, prompt, (text, n_tokens) in zip(chunk, sent, encoded, decoded):
                answers[i] = text
                self.record(request, text, len(prompt), n_tokens)
        return answers

    def complete(self, request):
        return self.complete_many([request])[0]

    @property
    def flops(self) -> float:
        """FLOPs of every batch decoded so far on this process's devices (llm2llm_jax/flops.py)."""
        return self.predictor.flops


# ---------------------------------------------------------------------------- scripted (tests, dry runs)
class ScriptedBackend(Backend):
    """Answers from a Python function of the request: deterministic, free, for tests and dry runs."""

    kind = "scripted"

    def __init__(self, settings, cache=None, budget=None, script=None):
        super().__init__(settings, cache, budget)
        if script is None:
            raise TeacherError("teacher.kind='scripted' needs a script function")
        self.script = script
        self.settings.model = settings.model or "script"
        self.seen: list = []
        self._seen_lock = threading.Lock()

    def _call(self, request):
        with self._seen_lock:
            self.seen.append(request)
        text = self.script(request)
        prompt = " ".join([request.system] + [t["content"] for t in request.turns])
        return text, len(prompt.split()), len(text.split())


BACKENDS = {"gemini": GeminiBackend, "openai": OpenAIBackend, "local": LocalBackend, "scripted": ScriptedBackend}


def make_backend(settings: TeacherSettings, cache: Optional[DiskCache] = None, **extra) -> Backend:
    if settings.kind not in BACKENDS:
        raise TeacherError(f"teacher.kind={settings.kind!r}: choose one of {sorted(BACKENDS)}")
    return BACKENDS[settings.kind](settings, cache, **extra)


def backend_from_config(section, run_dir: str, student=None, model: str = None, say=print,
                        student_name: str = "smollm2") -> Backend:
    """The backend for a run's `config.teacher` section, answering from (and into) the cache in
    run_dir/teacher_cache and counting its spend in the run's ledger, run_dir/teacher_spend.json.

    student: a function returning the run's (cfg, params, tokenizer); teacher.kind='local' with model '',
    'student' or the student's own name (`student_name`, see loading.model_name) samples the untrained base
    student (adapters are added per fine-tune, never loaded); any other model is loaded for the teacher.
    model: another model of the same kind and settings (a judge), answered greedily.
    """
    from llm2llm_jax.settings import build

    settings = build(TeacherSettings, section)
    if model is not None:  # a judge answers what it is sure of: greedy decoding
        settings = dataclasses.replace(settings, model=model or settings.model, temperature=0.0, top_p=1.0)
    extra = {}
    if settings.kind == "local" and settings.model in ("", "student", student_name) and student is not None:
        cfg, params, tok = student()
        extra["model"] = (cfg.replace(lora_rank=0), params, tok)
        settings = dataclasses.replace(settings, model=settings.model if settings.model not in ("", "student")
                                       else student_name)
    backend = make_backend(settings, DiskCache(os.path.join(run_dir, "teacher_cache")), **extra)
    backend.budget.attach(os.path.join(run_dir, SPEND_FILE))
    backend.batch_dir = os.path.join(run_dir, "teacher_batches")
    backend.say = say
    return backend
