"""Local HTTP servers that speak the Gemini REST API and the OpenAI API (chat completions, files, batches),
with scripted faults, structured outputs and token counts.

Each server answers generation requests from a queue of steps: ("ok", text), ("status", code), ("sleep",
seconds, text), ("garbage",) for an unreadable body. When the queue is empty it answers ("ok", default_text),
or, for a request that carries a JSON schema (Gemini's responseSchema, OpenAI's response_format), `json_text`
when set. `reject_schema` makes it refuse any request with a schema (HTTP 400 naming it). Tokens are counted
as words: the prompt's (system prompt and every turn) and the reply's, reported as usage and summed in
`usage`.

Batch APIs: Gemini's inlined batchGenerateContent / batches.get, OpenAI's files + batches. A job's reads of
its state walk `batch_states` (its last entry repeats); a succeeded job answers each request as a direct call
would, except the indices in `batch_errors`. GETs of models are recorded in `checks` and answer
`check_status`.
"""

import email.parser
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GEMINI_STATES = {
    "pending": "BATCH_STATE_PENDING",
    "running": "BATCH_STATE_RUNNING",
    "succeeded": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "expired": "BATCH_STATE_EXPIRED",
}
OPENAI_STATES = {
    "pending": "validating",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "expired": "expired",
}


def words(text: str) -> int:
    return len(str(text).split())


class ScriptedServer:
    def __init__(self, flavor: str, default_text: str = "1. Input: hello\n   Output: human"):
        self.flavor = flavor  # "gemini" or "openai"
        self.steps: list = []
        self.default_text = default_text
        self.json_text = ""  # the reply to a request with a schema ("" = the step's or default text)
        self.reject_schema = False
        self.requests: list = []  # generation requests, direct or inside a batch job
        self.schemas: list = []  # the schema of every generation request that carried one
        self.checks: list = []  # GET requests (model lookups: the run's reachability check)
        self.check_status = 200
        self.usage = {"input_tokens": 0, "output_tokens": 0, "calls": 0}
        self.batch_states = ["pending", "running", "succeeded"]
        self.batch_errors: set = set()
        self.jobs: dict = {}  # job id -> {"requests": [...], "reads": n}
        self.files: dict = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if "multipart/form-data" in headers.get("content-type", ""):
                    server.send_json(self, 200, server.upload(raw, headers["content-type"]))
                    return
                body = json.loads(raw or b"{}")
                path = self.path.split("?")[0]
                if path.endswith(":countTokens"):
                    server.send_json(self, 200, {"totalTokens": server.count_prompt(body)})
                elif path.endswith(":batchGenerateContent"):
                    server.send_json(self, 200, server.create_gemini_job(body, headers))
                elif path.endswith("/batches"):
                    server.send_json(self, 200, server.create_openai_job(body))
                else:
                    server.generate(self, path, body, headers)

            def do_GET(self):
                path = self.path.split("?")[0]
                with server.lock:
                    if "/batches/" not in path and "/files/" not in path:
                        server.checks.append(
                            {"path": path, "headers": {k.lower(): v for k, v in self.headers.items()}}
                        )
                if "/batches/" in path:
                    server.send_json(self, 200, server.read_job(path.rstrip("/").split("/")[-1]))
                    return
                if "/files/" in path and path.endswith("/content"):
                    payload = server.files[path.split("/")[-2]].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                code = server.check_status
                if code != 200:
                    server.respond(self, ("status", code))
                    return
                name = path.rstrip("/").split("/")[-1]
                body = (
                    {"name": f"models/{name}", "displayName": name}
                    if server.flavor == "gemini"
                    else {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
                )
                server.send_json(self, 200, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- what a request says
    def schema_of(self, body: dict):
        if self.flavor == "gemini":
            config = body.get("generationConfig") or {}
            schema = config.get("responseSchema") or config.get("responseJsonSchema")
            if schema is not None:
                assert config.get("responseMimeType") == "application/json", config
            return schema
        fmt = body.get("response_format")
        if fmt is None:
            return None
        assert fmt["type"] == "json_schema" and "schema" in fmt["json_schema"], fmt
        return fmt["json_schema"]["schema"]

    def count_prompt(self, body: dict) -> int:
        if self.flavor == "gemini":
            texts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
            texts += [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])]
        else:
            texts = [m.get("content", "") for m in body.get("messages", [])]
        return sum(words(t) for t in texts)

    def answer_text(self, body: dict, step_text: str) -> str:
        return self.json_text if self.schema_of(body) is not None and self.json_text else step_text

    def ok_body(self, body: dict, text: str) -> dict:
        prompt, out = self.count_prompt(body), words(text)
        with self.lock:
            self.usage["input_tokens"] += prompt
            self.usage["output_tokens"] += out
            self.usage["calls"] += 1
        if self.flavor == "gemini":
            return {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": out,
                    "totalTokenCount": prompt + out,
                },
                "modelVersion": "fake",
            }
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "model": "fake",
            "created": 0,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
        }

    def refusal(self, body: dict):
        if self.reject_schema and self.schema_of(body) is not None:
            what = "response_schema" if self.flavor == "gemini" else "response_format json_schema"
            return {
                "error": {
                    "code": 400,
                    "message": f"{what} is not supported by this server",
                    "status": "INVALID_ARGUMENT",
                }
            }
        return None

    # -- direct generation
    def generate(self, handler, path, body, headers):
        with self.lock:
            self.requests.append({"path": path, "body": body, "headers": headers})
            schema = self.schema_of(body)
            if schema is not None:
                self.schemas.append(schema)
        refused = self.refusal(body)
        if refused:
            self.send_json(handler, 400, refused)
            return
        with self.lock:
            step = self.steps.pop(0) if self.steps else ("ok", self.default_text)
        self.respond(handler, step, body)

    def respond(self, handler, step, body=None):
        kind, extra_headers = step[0], {}
        if kind == "sleep":
            time.sleep(step[1])
            step = ("ok", step[2])
            kind = "ok"
        if kind == "ok":
            payload, code = (
                json.dumps(self.ok_body(body or {}, self.answer_text(body or {}, step[1]))).encode(),
                200,
            )
        elif kind == "status":  # ("status", code[, delay]): the delay as Retry-After or Gemini's RetryInfo
            code = step[1]
            error = {
                "code": code,
                "message": f"scripted {code}",
                "status": "RESOURCE_EXHAUSTED" if code == 429 else "INTERNAL",
            }
            if len(step) > 2 and self.flavor == "gemini":
                error["details"] = [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": step[2]}
                ]
            elif len(step) > 2:
                extra_headers["Retry-After"] = step[2]
            payload = json.dumps({"error": error}).encode()
        else:  # garbage
            payload, code = b"<html>not json", 200
        self.send_raw(handler, code, payload, extra_headers)

    def send_json(self, handler, code, obj):
        self.send_raw(handler, code, json.dumps(obj).encode())

    @staticmethod
    def send_raw(handler, code, payload, headers=None):
        try:
            handler.send_response(code)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    # -- batch jobs
    def _new_job(self, requests: list) -> str:
        with self.lock:
            job_id = f"job{len(self.jobs) + 1}"
            self.jobs[job_id] = {"requests": requests, "reads": 0}
        return job_id

    def _state(self, job: dict) -> str:
        return self.batch_states[min(job["reads"], len(self.batch_states) - 1)]

    def _answers(self, job: dict) -> list:
        """(answer body or None for an error) per request of a finished job, computed once."""
        if "answers" not in job:
            answers = []
            for n, body in enumerate(job["requests"]):
                with self.lock:
                    self.requests.append({"path": "batch", "body": body, "headers": {}})
                    if self.schema_of(body) is not None:
                        self.schemas.append(self.schema_of(body))
                if n in self.batch_errors or self.refusal(body):
                    answers.append(None)
                else:
                    answers.append(self.ok_body(body, self.answer_text(body, self.default_text)))
            job["answers"] = answers
        return job["answers"]

    def create_gemini_job(self, body, headers):
        inlined = body["batch"]["inputConfig"]["requests"]["requests"]
        job_id = self._new_job(
            [dict(item["request"], _key=(item.get("metadata") or {}).get("key")) for item in inlined]
        )
        return self._gemini_job(job_id, "pending")

    def _gemini_job(self, job_id: str, state: str) -> dict:
        meta = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "name": f"batches/{job_id}",
            "displayName": job_id,
            "state": GEMINI_STATES[state],
            "model": "models/fake-model",
        }
        if state == "succeeded":
            job = self.jobs[job_id]
            items = []
            for body, answer in zip(job["requests"], self._answers(job)):
                item = {"metadata": {"key": body["_key"]}}
                item.update(
                    {"response": answer} if answer else {"error": {"code": 400, "message": "scripted"}}
                )
                items.append(item)
            meta["output"] = {"inlinedResponses": {"inlinedResponses": items}}
        return {"name": f"batches/{job_id}", "metadata": meta, "done": state not in ("pending", "running")}

    def upload(self, raw: bytes, content_type: str) -> dict:
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        data = b""
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True)
        with self.lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = data.decode()
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": 0,
            "filename": "batch.jsonl",
            "purpose": "batch",
            "status": "processed",
        }

    def create_openai_job(self, body):
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].splitlines() if line.strip()]
        for line in lines:
            assert line["url"] == "/v1/chat/completions" and line["method"] == "POST", line
        job_id = self._new_job([dict(line["body"], _key=line["custom_id"]) for line in lines])
        return self._openai_job(job_id, "pending", body)

    def _openai_job(self, job_id: str, state: str, body=None) -> dict:
        job = self.jobs[job_id]
        out = {
            "id": job_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-1",
            "completion_window": "24h",
            "status": OPENAI_STATES[state],
            "created_at": 0,
        }
        if state == "succeeded":
            if "output_file" not in job:
                rows = []
                for request, answer in zip(job["requests"], self._answers(job)):
                    if answer:
                        rows.append(
                            {
                                "id": "r",
                                "custom_id": request["_key"],
                                "error": None,
                                "response": {"status_code": 200, "request_id": "q", "body": answer},
                            }
                        )
                    else:
                        rows.append(
                            {
                                "id": "r",
                                "custom_id": request["_key"],
                                "response": None,
                                "error": {"code": "scripted", "message": "scripted error"},
                            }
                        )
                with self.lock:
                    job["output_file"] = f"file-{len(self.files) + 1}"
                    self.files[job["output_file"]] = "\n".join(json.dumps(r) for r in rows) + "\n"
            out["output_file_id"] = job["output_file"]
        if state == "failed":
            out["errors"] = {"object": "list", "data": [{"code": "scripted", "message": "the job failed"}]}
        return out

    def read_job(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        state = self._state(job)
        job["reads"] += 1
        return self._gemini_job(job_id, state) if self.flavor == "gemini" else self._openai_job(job_id, state)
