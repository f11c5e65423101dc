"""Teacher backends behind one interface: gemini (google-genai), openai (chat completions), local (Flax Llama).

Every backend gets the same shell: an on-disk cache checked before any call, a per-run budget of
calls and tokens checked before paying, retries with exponential backoff and jitter on 429, 5xx and
timeouts (tenacity), and a concurrency limit for the API backends.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class TeacherRequest:
    system: str
    turns: list  # [{"role": "user"|"assistant", "content": str}]
    seed: int


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
    """Cache + budget + retries around one backend's `_call(request) -> (text, input tokens, output tokens)`."""

    kind = "base"
    flops = 0.0  # computed on this process's devices: a local model's (a remote teacher computes elsewhere)

    def __init__(self, settings: TeacherSettings, cache: Optional[DiskCache] = None, budget: Optional[Budget] = None):
        self.settings = settings
        self.cache = cache
        self.budget = budget or Budget(settings.max_calls, settings.max_tokens, settings.price_input,
                                       settings.price_output)
        self.stats = {"calls": 0, "cached": 0, "retries": 0}
        self._stats_lock = threading.Lock()

    def key(self, request: TeacherRequest) -> str:
        s = self.settings
        return cache_key(backend=self.kind, model=s.model, system=request.system, turns=request.turns,
                         temperature=s.temperature, top_p=s.top_p, max_output_tokens=s.max_output_tokens,
                         seed=request.seed)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def complete(self, request: TeacherRequest) -> str:
        key = self.key(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cached")
                return hit["text"]
        self.budget.reserve()
        s = self.settings

        def before_retry(state):
            self._count("retries")

        caller = retry(retry=retry_if_exception_type(TransientError), stop=stop_after_attempt(s.max_attempts),
                       wait=wait_random_exponential(multiplier=s.initial_delay, max=s.max_delay),
                       before_sleep=before_retry, reraise=True)(self._call)
        try:
            text, input_tokens, output_tokens = caller(request)
        except TransientError as e:
            self.budget.release()
            raise TeacherError(f"{self.kind} teacher failed after {s.max_attempts} attempts: {e}") from None
        except BaseException:
            self.budget.release()
            raise
        self._count("calls")
        self.budget.charge(input_tokens, output_tokens)
        if self.cache is not None:
            self.cache.put(key, {"text": text, "input_tokens": input_tokens, "output_tokens": output_tokens})
        return text

    def complete_many(self, requests: Sequence[TeacherRequest]) -> list[str]:
        """Answers in request order, at most `concurrency` calls in flight."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(self.complete, requests))

    def _call(self, request: TeacherRequest) -> tuple[str, int, int]:
        raise NotImplementedError

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
class GeminiBackend(Backend):
    kind = "gemini"

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

    def _call(self, request):
        from google.genai import errors

        t, s = self.types, self.settings
        contents = [t.Content(role="model" if m["role"] == "assistant" else "user", parts=[t.Part(text=m["content"])])
                    for m in request.turns]
        config = t.GenerateContentConfig(system_instruction=request.system, temperature=s.temperature, top_p=s.top_p,
                                         max_output_tokens=s.max_output_tokens, seed=request.seed, candidate_count=1)
        try:
            resp = self.client.models.generate_content(model=s.model, contents=contents, config=config)
        except errors.APIError as e:
            if e.code == 429 or (e.code or 0) >= 500:
                raise TransientError(f"HTTP {e.code}: {e.message}") from None
            raise TeacherError(f"gemini HTTP {e.code}: {e.message}") from None
        except _network_errors() as e:
            raise TransientError(f"{type(e).__name__}: {e}") from None
        except ValueError as e:  # unreadable response body
            raise TransientError(f"unreadable response: {e}") from None
        usage = resp.usage_metadata
        if usage is None:
            return resp.text or "", 0, 0
        return resp.text or "", usage.prompt_token_count or 0, usage.candidates_token_count or 0

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


# ---------------------------------------------------------------------------- openai-compatible
class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, settings, cache=None, budget=None):
        super().__init__(settings, cache, budget)
        import httpx

        self.base_url = (settings.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        env = settings.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(env, "")
        if not key and "api.openai.com" in self.base_url:
            raise TeacherError(f"teacher.kind='openai' against {self.base_url} needs an API key: set {env}")
        self.settings.model = settings.model or "gpt-4o-mini"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(headers=headers, timeout=settings.timeout)

    def _call(self, request):
        import httpx

        s = self.settings
        body = {"model": s.model, "messages": [{"role": "system", "content": request.system}] + list(request.turns),
                "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_output_tokens,
                "seed": request.seed}
        try:
            resp = self.http.post(f"{self.base_url}/chat/completions", json=body)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise TransientError(f"{type(e).__name__}: {e}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            raise TeacherError(f"openai HTTP {resp.status_code} from {self.base_url}: {resp.text[:300]}")
        try:
            data = resp.json()
            text = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise TransientError(f"unreadable response ({type(e).__name__}): {resp.text[:200]}") from None
        usage = data.get("usage") or {}
        return text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))

    def check_reachable(self):
        import httpx

        try:
            resp = self.http.get(f"{self.base_url}/models")
        except (httpx.TimeoutException, httpx.TransportError) as e:
            raise TeacherError(f"cannot reach the openai teacher at {self.base_url} ({type(e).__name__}: "
                               f"{str(e)[:200]}); check teacher.base_url and that the server is running") from None
        if resp.status_code in (401, 403):
            raise TeacherError(f"the openai teacher at {self.base_url} rejected the API key (HTTP "
                               f"{resp.status_code}); check ${self.settings.api_key_env or 'OPENAI_API_KEY'}")


# ---------------------------------------------------------------------------- local Flax Llama
class LocalBackend(Backend):
    """A Llama checkpoint sampled with this project's decode (SmolLM2-135M-Instruct offline)."""

    kind = "local"

    def __init__(self, settings, cache=None, budget=None, model=None, batch_size: int = 16):
        super().__init__(settings, cache, budget)
        if model is None:
            from llm2llm_jax.model.loading import load_pretrained

            model = load_pretrained("smollm2" if not settings.model or settings.model == "smollm2" else "hf",
                                    "" if settings.model in ("", "smollm2") else settings.model, progress=False)
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

    def complete_many(self, requests):
        """Cached answers first; the rest decoded in batches with one PRNG key per request (its seed)."""
        import jax

        answers: list = [None] * len(requests)
        todo = []
        for i, r in enumerate(requests):
            hit = self.cache.get(self.key(r)) if self.cache is not None else None
            if hit is not None:
                answers[i] = hit["text"]
                self._count("cached")
            else:
                todo.append(i)
        s = self.settings
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for _ in chunk:
                self.budget.reserve()
            encoded = [self.tokenizer(self._prompt(requests[i]), add_special_tokens=False)["input_ids"] for i in chunk]
            # Every prompt begins with the same rules and worked example: read once per batch.
            decoded = self.predictor.generate(encoded, s.max_output_tokens, temperature=s.temperature, top_p=s.top_p,
                                              rngs=[jax.random.PRNGKey(requests[i].seed) for i in chunk],
                                              prefix_multiple=32)
            for i, prompt, (text, n_tokens) in zip(chunk, encoded, decoded):
                answers[i] = text
                self._count("calls")
                self.budget.charge(len(prompt), n_tokens)
                if self.cache is not None:
                    self.cache.put(self.key(requests[i]), {"text": text, "input_tokens": len(prompt),
                                                           "output_tokens": n_tokens})
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


def backend_from_config(section, run_dir: str, student=None) -> Backend:
    """The backend for a run's `config.teacher` section, answering from (and into) the cache in
    run_dir/teacher_cache and counting its spend in the run's ledger, run_dir/teacher_spend.json.

    student: a function returning the run's (cfg, params, tokenizer); teacher.kind='local' with model ''
    or 'smollm2' samples the untrained base student (adapters are added per fine-tune, never loaded).
    """
    from llm2llm_jax.settings import build

    settings = build(TeacherSettings, section)
    extra = {}
    if settings.kind == "local" and settings.model in ("", "smollm2", "student") and student is not None:
        cfg, params, tok = student()
        extra["model"] = (cfg.replace(lora_rank=0), params, tok)
    backend = make_backend(settings, DiskCache(os.path.join(run_dir, "teacher_cache")), **extra)
    backend.budget.attach(os.path.join(run_dir, SPEND_FILE))
    return backend
