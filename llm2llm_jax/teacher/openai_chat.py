"""The OpenAI-compatible teacher (OpenAI, vLLM, llama.cpp and any chat-completions server) through the openai
SDK: chat completions with a `response_format` schema, the model list as a reachability check, and the Batch
API."""

from __future__ import annotations

import json
import os

from llm2llm_jax.teacher.base import (
    Backend,
    SchemaRejected,
    TeacherError,
    TransientError,
    mentions_schema,
    retry_after_seconds,
)
from llm2llm_jax.teacher.batch import BatchJobs

_OPENAI_TERMINAL = {
    "completed": "succeeded",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
    "cancelling": "cancelled",
}


class OpenAIBackend(BatchJobs, Backend):
    """Any chat-completions server (OpenAI, vLLM, llama.cpp, ...) through the official openai SDK."""

    kind = "openai"
    supports_schema = True
    paid = True

    def __init__(self, settings, cache=None, budget=None):
        super().__init__(settings, cache, budget)
        import openai

        self.base_url = (
            settings.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        env = settings.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(env, "")
        if not key and "api.openai.com" in self.base_url:
            raise TeacherError(f"teacher.kind='openai' against {self.base_url} needs an API key: set {env}")
        self.settings.model = settings.model or "gpt-4o-mini"
        # Local servers (vLLM, llama.cpp) often take no key; the SDK needs one, so a placeholder is sent
        # there.
        self.client = openai.OpenAI(
            api_key=key or "no-key", base_url=self.base_url, timeout=settings.timeout, max_retries=0
        )  # one retry policy for every backend: Backend.complete's
        self.openai = openai

    def _body(self, request) -> dict:
        s = self.settings
        body = {
            "model": s.model,
            "messages": [{"role": "system", "content": request.system}] + list(request.turns),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_output_tokens,
            "seed": request.seed,
        }
        if request.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.schema, "strict": True},
            }
        return body

    def _error(self, e, request, what: str):
        o = self.openai
        if isinstance(e, (o.APITimeoutError, o.APIConnectionError)):
            return TransientError(f"{type(e).__name__}: {e}")
        if isinstance(e, o.APIResponseValidationError):
            return TransientError(f"unreadable response: {e}")
        status = getattr(e, "status_code", None)
        if status == 429 or (status or 0) >= 500:
            headers = getattr(getattr(e, "response", None), "headers", None) or {}
            asked = retry_after_seconds(headers.get("retry-after-ms"))
            asked = asked / 1000 if asked is not None else retry_after_seconds(headers.get("retry-after"))
            return TransientError(f"HTTP {status}: {str(e)[:200]}", retry_after=asked)
        message = str(getattr(e, "message", e))
        if (
            status in (400, 422)
            and request is not None
            and request.schema is not None
            and mentions_schema(message)
        ):
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
        return (
            text,
            int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0),
        )

    def check_reachable(self):
        o = self.openai
        try:
            self.client.models.list()
        except (o.AuthenticationError, o.PermissionDeniedError) as e:
            raise TeacherError(
                f"the openai teacher at {self.base_url} rejected the API key (HTTP "
                f"{e.status_code}); check ${self.settings.api_key_env or 'OPENAI_API_KEY'}"
            ) from None
        except (o.APITimeoutError, o.APIConnectionError) as e:
            cause = e.__cause__ or e  # the transport's own error says more than the SDK's "Connection error."
            raise TeacherError(
                f"cannot reach the openai teacher at {self.base_url} ({type(cause).__name__}: "
                f"{str(cause)[:200]}); check teacher.base_url and that the server is running"
            ) from None
        except o.OpenAIError:
            pass  # servers without a model list (some local ones) are checked by their first request

    # -- the Batch API (a JSONL file of requests, one batch over it, a JSONL file of results)
    def _batch_submit(self, requests, keys):
        lines = [
            json.dumps(
                {"custom_id": k, "method": "POST", "url": "/v1/chat/completions", "body": self._body(r)}
            )
            for r, k in zip(requests, keys)
        ]
        try:
            uploaded = self.client.files.create(
                file=("llm2llm_batch.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
            )
            job = self.client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"source": "llm2llm_jax"},
            )
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
            by_key[row.get("custom_id")] = (
                text,
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
            )
        return [by_key.get(k, "error: no result in the batch output") for k in keys]
