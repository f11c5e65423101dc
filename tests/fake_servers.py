"""Local HTTP servers that speak the Gemini REST API and the OpenAI chat-completions API, with scripted faults.

Each server answers from a queue of steps: ("ok", text), ("status", code), ("sleep", seconds, text),
("garbage",) for an unreadable body. When the queue is empty it answers ("ok", default_text).
Every request body is recorded so tests can check what the client sent; GETs (model lookups, the
run's reachability check) are recorded apart, in `checks`, and answer `check_status`.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self, flavor: str, default_text: str = "1. Input: hello\n   Output: human"):
        self.flavor = flavor  # "gemini" or "openai"
        self.steps: list = []
        self.default_text = default_text
        self.requests: list = []
        self.checks: list = []  # GET requests (model lookups: the run's reachability check)
        self.check_status = 200
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    step = server.steps.pop(0) if server.steps else ("ok", server.default_text)
                server.respond(self, step)

            def do_GET(self):
                with server.lock:
                    server.checks.append({"path": self.path, "headers": dict(self.headers)})
                code = server.check_status
                if code != 200:
                    server.respond(self, ("status", code))
                    return
                name = self.path.rstrip("/").split("/")[-1]
                body = ({"name": f"models/{name}", "displayName": name} if server.flavor == "gemini"
                        else {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _ok_body(self, text: str) -> dict:
        if self.flavor == "gemini":
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                                    "index": 0}],
                    "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18},
                    "modelVersion": "fake"}
        return {"id": "cmpl-1", "object": "chat.completion", "model": "fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}

    def respond(self, handler, step):
        kind = step[0]
        if kind == "sleep":
            time.sleep(step[1])
            step = ("ok", step[2])
            kind = "ok"
        if kind == "ok":
            payload, code = json.dumps(self._ok_body(step[1])).encode(), 200
        elif kind == "status":
            code = step[1]
            payload = json.dumps({"error": {"code": code, "message": f"scripted {code}",
                                            "status": "RESOURCE_EXHAUSTED" if code == 429 else "INTERNAL"}}).encode()
        else:  # garbage
            payload, code = b"<html>not json", 200
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
