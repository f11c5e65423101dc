"""A test double of a teacher: answers from a Python function of the request, deterministic and free."""

import threading

from llm2llm_jax.teacher.base import Backend, TeacherError


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
