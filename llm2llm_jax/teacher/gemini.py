"""The Gemini teacher through google-genai: generateContent with a response schema, countTokens, and inlined
batch jobs."""

from __future__ import annotations

import os

from llm2llm_jax.teacher.base import (
    Backend,
    SchemaRejected,
    TeacherError,
    TransientError,
    mentions_schema,
    network_errors,
    retry_after_seconds,
)
from llm2llm_jax.teacher.batch import BatchJobs

_GEMINI_TERMINAL = {
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def retry_info_delay(details) -> float | None:
    """The `retryDelay` ("30s") of the RetryInfo in a Google API error body, in seconds, or None."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details") or [] if isinstance(error, dict) else []:
        if isinstance(item, dict) and item.get("@type") == RETRY_INFO:
            return retry_after_seconds(str(item.get("retryDelay", "")))
    return None


def gemini_schema(schema):
    """A JSON schema in the OpenAPI subset of Gemini's response_schema, which has no additionalProperties."""
    if isinstance(schema, dict):
        return {k: gemini_schema(v) for k, v in schema.items() if k != "additionalProperties"}
    if isinstance(schema, list):
        return [gemini_schema(v) for v in schema]
    return schema


class GeminiBackend(BatchJobs, Backend):
    kind = "gemini"
    supports_schema = True
    paid = True

    def __init__(self, settings, cache=None, budget=None):
        super().__init__(settings, cache, budget)
        from google import genai
        from google.genai import types

        key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not key:
            raise TeacherError(
                "teacher.kind='gemini' needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)"
            )
        self.settings.model = settings.model or "gemini-2.5-flash"
        http = types.HttpOptions(
            base_url=settings.base_url or None,
            timeout=int(settings.timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )  # we retry ourselves
        self.client = genai.Client(api_key=key, http_options=http)
        self.types = types
        self.url = settings.base_url or "https://generativelanguage.googleapis.com"

    def _contents(self, request):
        t = self.types
        return [
            t.Content(role="model" if m["role"] == "assistant" else "user", parts=[t.Part(text=m["content"])])
            for m in request.turns
        ]

    def _config(self, request):
        s = self.settings
        extra = {}
        if request.schema is not None:
            extra = dict(response_mime_type="application/json", response_schema=gemini_schema(request.schema))
        return self.types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=s.temperature,
            top_p=s.top_p,
            max_output_tokens=s.max_output_tokens,
            seed=request.seed,
            candidate_count=1,
            **extra,
        )

    def _api_error(self, e, request, what: str = "gemini"):
        if e.code == 429 or (e.code or 0) >= 500:
            return TransientError(f"HTTP {e.code}: {e.message}", retry_after=retry_info_delay(e.details))
        if (
            e.code == 400
            and request is not None
            and request.schema is not None
            and mentions_schema(e.message)
        ):
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
            resp = self.client.models.generate_content(
                model=self.settings.model, contents=self._contents(request), config=self._config(request)
            )
        except errors.APIError as e:
            raise self._api_error(e, request) from None
        except network_errors() as e:
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
        except (errors.APIError, *network_errors()):
            return super().count_input_tokens(request)
        return int(counted.total_tokens or 0), "counted by the gemini API"

    def check_reachable(self):
        from google.genai import errors

        try:
            self.client.models.get(model=self.settings.model)
        except errors.APIError as e:
            raise TeacherError(
                f"the gemini teacher at {self.url} refused a check of model "
                f"{self.settings.model!r}: HTTP {e.code} {e.message} (check teacher.model and the "
                f"API key)"
            ) from None
        except network_errors() as e:
            raise TeacherError(
                f"cannot reach the gemini teacher at {self.url} ({type(e).__name__}: "
                f"{str(e)[:200]}); check teacher.base_url and the network"
            ) from None

    # -- the Batch API (inlined requests)
    def _batch_submit(self, requests, keys):
        from google.genai import errors

        src = [
            {"contents": self._contents(r), "config": self._config(r), "metadata": {"key": k}}
            for r, k in zip(requests, keys)
        ]
        try:
            job = self.client.batches.create(
                model=self.settings.model, src=src, config={"display_name": f"llm2llm-{keys[0][:12]}"}
            )
        except errors.APIError as e:
            raise self._api_error(e, None, "gemini batch submission") from None
        except network_errors() as e:
            raise TeacherError(
                f"cannot submit the gemini batch job to {self.url} ({type(e).__name__}: {e}); "
                f"rerun the same command to try again"
            ) from None
        return job.name

    def _batch_state(self, job_id):
        from google.genai import errors

        try:
            job = self.client.batches.get(name=job_id)
        except errors.APIError as e:
            if e.code == 429 or (e.code or 0) >= 500:
                return "pending", f"HTTP {e.code}"
            raise TeacherError(f"gemini batch job {job_id}: HTTP {e.code} {e.message}") from None
        except network_errors() as e:
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
