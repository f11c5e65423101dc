"""What the teacher is asked and how its answers come back: label-conditioned prompts, several requests per
example, structured outputs (schema sent, reply read, a refused schema falls back to text), the Gemini and
OpenAI batch APIs (submit, poll, resume after kill -9, a failed job), the judge, and the cost estimate against
the tokens the server counted."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fake_servers import ScriptedServer
from scripted_teacher import ScriptedBackend

from llm2llm_jax.augment.base import Context
from llm2llm_jax.augment.estimate import describe_estimate, estimate_teacher_use
from llm2llm_jax.augment.llm2llm import Llm2llm
from llm2llm_jax.common import files
from llm2llm_jax.common.seeds import stable_seed
from llm2llm_jax.config import checks, snapshot
from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.teacher import prompts, replies
from llm2llm_jax.teacher.base import TeacherError, TeacherRequest, TeacherSettings
from llm2llm_jax.teacher.cache import DiskCache
from llm2llm_jax.teacher.factory import make_backend
from llm2llm_jax.teacher.filters import AugmentationFilter

SECRET = "test-key-do-not-store-456"
TREC = TASKS["trec"]
PARENT = {"id": "p1", "input": "Who wrote Hamlet ?", "output": "HUM"}


def _config(**teacher):
    from configs.base import base_config

    c = base_config()
    c.task = "trec"
    c.teacher.per_example = 3
    for k, v in teacher.items():
        if k.startswith("filters_"):
            c.filters[k[len("filters_") :]] = v
        else:
            c.teacher[k] = v
    return c


def _ctx(config, teacher, seed_set=(PARENT,), judge=None):
    return Context(
        TREC, config, list(seed_set), lambda: teacher, say=lambda m: None, judge=judge or (lambda: teacher)
    )


# ---------------------------------------------------------------------------- prompts and parsing
def test_label_conditioned_prompt_names_the_class_and_asks_only_for_inputs():
    system, turns = prompts.build_messages(TREC, PARENT, " location", 2, mode="label_conditioned")
    last = turns[-1]["content"]
    assert "Class: human" in last and "a person" in last and "Who wrote Hamlet ?" in last
    assert last.endswith("Write 2 new questions of this class.")
    assert "location" not in last  # the student's wrong answer is not shown in this mode
    assert "numbered list of the new questions" in system and "Output:" not in system
    assert turns[1] == {"role": "assistant", "content": "1. What does the abbreviation UNESCO mean ?"}
    with pytest.raises(ValueError, match="classification"):
        prompts.build_messages(
            TASKS["gsm8k"], {"input": "x", "output": "#### 1"}, "", 1, mode="label_conditioned"
        )
    assert prompts.resolve_mode("auto", TREC) == "label_conditioned"
    assert prompts.resolve_mode("auto", TASKS["gsm8k"]) == "example"


def test_parse_inputs_reads_lists_bare_lines_and_json():
    reply = (
        'Sure! Here are two:\n1. **Question:** Who built the "Taj Mahal" ?\n2) "Who painted Guernica ?"\n'
        "   and why ?\n- Question: Who sang Help ?"
    )
    assert [c["input"] for c in replies.parse_inputs(reply, TREC)] == [
        'Who built the "Taj Mahal" ?',
        "Who painted Guernica ?",
        "Who sang Help ?",
    ]
    # inputs that span lines (the parent's does) keep the lines below their marker
    assert [c["input"] for c in replies.parse_inputs(reply, TREC, multiline=True)] == [
        'Who built the "Taj Mahal" ?',
        "Who painted Guernica ? and why ?",
        "Who sang Help ?",
    ]
    # a weak teacher's rewording or remark after its item is not part of it
    assert [
        c["input"]
        for c in replies.parse_inputs(
            "2. Who first walked on the moon ?\n\nQuestion: Who walked "
            "there first ?\n3. Who wrote Ulysses ?\nNote: a novel",
            TREC,
            multiline=True,
        )
    ] == ["Who first walked on the moon ?", "Who wrote Ulysses ?"]
    assert replies.parse_inputs("Who discovered oxygen ?", TREC) == [
        {"input": "Who discovered oxygen ?", "raw_output": ""}
    ]
    assert replies.parse_inputs("I cannot do that.\nSorry about it.", TREC) == []  # chatter, not a list
    assert replies.parse_inputs("", TREC) == []
    assert [
        c["input"]
        for c in replies.parse_inputs(
            '```json\n{"examples": [{"input": "Who is Ada ?"}, "Who is Alan ?"]}\n```', TREC
        )
    ] == ["Who is Ada ?", "Who is Alan ?"]
    # example mode reads the same JSON shape, with outputs
    pairs = replies.parse_examples('{"examples": [{"input": "Where is Oslo ?", "output": "location"}]}', TREC)
    assert pairs == [{"input": "Where is Oslo ?", "raw_output": "location"}]


def test_a_weak_teachers_wrapped_reply_is_read_where_its_item_is_unambiguous():
    """No list, but a lead-in line, a code fence or 'Output:' around the item: the item is read. Placeholders,
    or several plain lines that could each be the item or a remark, give nothing."""

    def read(text):
        return [c["input"] for c in replies.parse_inputs(text, TREC)]

    assert read("Here is the output:\nOutput: Who founded Rome ?") == ["Who founded Rome ?"]
    assert read("Sure! Here is a new question\nWho founded Rome ?") == ["Who founded Rome ?"]
    assert read("```\nWho founded Rome ?\n```") == ["Who founded Rome ?"]
    assert read("Output: Who founded Rome ?\nOutput: Who wrote Faust ?") == [
        "Who founded Rome ?",
        "Who wrote Faust ?",
    ]
    assert read("Here is the output:\nOutput: [1] \nOutput: [2]") == []  # placeholders, not questions
    assert read("Who founded Rome ?\nIt is a history question.") == []  # which line is the item?
    assert read("Output: ...") == [] and read("Output: <question>") == []
    assert (
        read("The output of the class is:") == [] and read("Here are the questions:\n") == []
    )  # lead-ins alone


def test_several_requests_per_example_each_with_its_own_seed_and_the_label_attached():
    seen = []

    def script(request):
        seen.append(request)
        return f"1. Who directed film number {request.seed % 1000} ?"

    teacher = ScriptedBackend(TeacherSettings(kind="scripted"), script=script)
    config = _config(mode="label_conditioned", requests_per_example=3)
    method = Llm2llm(_ctx(config, teacher))
    filt = AugmentationFilter(TREC, [PARENT["input"]], [])
    kept, stats = method.augment(0, [PARENT], {}, filt)
    assert len(seen) == 3 and len({r.seed for r in seen}) == 3
    assert all("Write 1 new question of this class." in r.turns[-1]["content"] for r in seen)
    # the first request's seed is the one a single request per example gets
    single = _config(mode="label_conditioned", requests_per_example=1)
    assert seen[0].seed == stable_seed(single.seed, "teacher", 0, PARENT["id"])
    assert [k["output"] for k in kept] == ["HUM"] * 3 and [k["id"] for k in kept] == [
        "it0-p1-0",
        "it0-p1-1",
        "it0-p1-2",
    ]
    assert stats["requests"] == 3 and stats["asked"] == 3 and stats["candidates"] == 3


# ---------------------------------------------------------------------------- structured outputs
@pytest.fixture(params=["gemini", "openai"])
def served(request, monkeypatch, tmp_path):
    server = ScriptedServer(request.param)
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("FAKE_OPENAI_KEY", SECRET)

    def make(cache="cache", **overrides):
        s = dict(
            kind=request.param,
            model="fake-model",
            base_url=server.url + ("/v1" if request.param == "openai" else ""),
            api_key_env="FAKE_OPENAI_KEY",
            initial_delay=0.01,
            max_delay=0.05,
            timeout=5.0,
            max_attempts=3,
            concurrency=2,
            batch_poll_seconds=0.01,
        )
        s.update(overrides)
        backend = make_backend(TeacherSettings(**s), DiskCache(str(tmp_path / cache)))
        backend.batch_dir = str(tmp_path / "teacher_batches")
        backend.say = lambda m: None
        return backend

    yield server, make
    server.close()


def _normalized(schema):
    """A schema as Gemini's response_schema carries it (upper-case types, no additionalProperties) or as
    sent."""
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" else _normalized(v))
            for k, v in schema.items()
            if k not in ("additionalProperties", "additional_properties")
        }
    if isinstance(schema, list):
        return [_normalized(v) for v in schema]
    return schema


def test_structured_reply_sends_the_schema_and_is_parsed(served):
    server, make = served
    server.json_text = json.dumps(
        {"examples": [{"input": "Who founded Rome ?"}, {"input": "Who wrote Emma ?"}]}
    )
    backend = make()
    config = _config(mode="label_conditioned", per_example=2)
    kept, stats = Llm2llm(_ctx(config, backend)).augment(0, [PARENT], {}, AugmentationFilter(TREC, [], []))
    assert [k["input"] for k in kept] == ["Who founded Rome ?", "Who wrote Emma ?"]
    assert [_normalized(s) for s in server.schemas] == [
        _normalized(prompts.reply_schema(TREC, "label_conditioned"))
    ]
    body = server.requests[0]["body"]
    assert "JSON" in json.dumps(body)  # the prompt asks for the JSON it will get
    # example mode: the output is an enum of the task's verbalizers
    schema = prompts.reply_schema(TREC, "example")
    assert schema["properties"]["examples"]["items"]["properties"]["output"]["enum"] == list(TREC.words)


def test_a_refused_schema_falls_back_to_text_once(served):
    server, make = served
    server.reject_schema = True
    server.default_text = "1. Who invented radar ?"
    backend = make()
    config = _config(mode="label_conditioned", per_example=1)
    method = Llm2llm(_ctx(config, backend))
    kept, _ = method.augment(0, [PARENT], {}, AugmentationFilter(TREC, [], []))
    assert [k["input"] for k in kept] == ["Who invented radar ?"]
    assert backend.schema_refused and not backend.structured
    assert [server.schema_of(r["body"]) is not None for r in server.requests] == [True, False]
    second = dict(PARENT, id="p2", input="Who painted Guernica ?")
    method.augment(1, [second], {}, AugmentationFilter(TREC, [], []))
    assert len(server.requests) == 3 and server.schema_of(server.requests[-1]["body"]) is None
    assert backend.budget.calls == 2  # the refused call was not paid


# ---------------------------------------------------------------------------- batch APIs
def _requests(n, structured=False):
    out = []
    for i in range(n):
        parent = dict(PARENT, id=f"p{i}", input=f"Who wrote book number {i} ?")
        plain = TeacherRequest(*prompts.build_messages(TREC, parent, "", 1, mode="label_conditioned"), seed=i)
        out.append(plain)
    return out


def test_batch_job_submits_polls_and_records_every_answer(served):
    server, make = served
    server.default_text = "1. Who wrote Dune ?"
    backend = make(batch=True)
    answers = backend.complete_many(_requests(3))
    assert answers == ["1. Who wrote Dune ?"] * 3
    assert len(server.jobs) == 1 and len(server.jobs["job1"]["requests"]) == 3
    assert server.jobs["job1"]["reads"] >= 3  # pending, running, succeeded
    spent = backend.budget.spent
    assert spent["calls"] == 3 and spent["input_tokens"] == server.usage["input_tokens"]
    assert spent["output_tokens"] == server.usage["output_tokens"] == 3 * 5
    assert os.listdir(backend.batch_dir) == []  # the record goes once the answers are cached
    again = make(batch=True)
    assert again.complete_many(_requests(3)) == answers and len(server.jobs) == 1  # from the cache
    assert again.stats["cached"] == 3


def test_batch_errors_are_sent_again_one_by_one(served):
    server, make = served
    server.default_text = "1. Who wrote Dune ?"
    server.batch_errors = {1}
    backend = make(batch=True)
    assert backend.complete_many(_requests(3)) == ["1. Who wrote Dune ?"] * 3
    direct = [r for r in server.requests if r["path"] != "batch"]
    assert len(direct) == 1 and backend.budget.calls == 3


def test_a_failed_batch_job_is_one_line_and_the_rerun_submits_again(served):
    server, make = served
    server.batch_states = ["running", "failed"]
    backend = make(batch=True)
    with pytest.raises(TeacherError, match=r"batch job .* ended failed.*Rerun the same command"):
        backend.complete_many(_requests(2))
    assert backend.budget.calls == 0 and backend.budget.in_flight == 0
    assert os.listdir(backend.batch_dir) == []
    server.batch_states = ["succeeded"]
    assert len(make(batch=True).complete_many(_requests(2))) == 2 and len(server.jobs) == 2


POLLER = """
import os, sys
sys.path.insert(0, {root!r})
from llm2llm_jax.teacher.base import TeacherSettings
from llm2llm_jax.teacher.factory import make_backend
from llm2llm_jax.teacher.cache import DiskCache
sys.path.insert(0, {tests!r})
from test_teacher_modes import _requests
backend = make_backend(TeacherSettings(**{settings!r}), DiskCache({cache!r}))
backend.batch_dir = {batch_dir!r}
backend.complete_many(_requests(3))
print("finished")
"""


@pytest.mark.slow
def test_a_run_killed_while_its_batch_job_runs_polls_that_job_instead_of_submitting_again(served, tmp_path):
    server, make = served
    server.default_text = "1. Who wrote Dune ?"
    server.batch_states = ["running"]  # runs until the test lets it finish
    backend = make(batch=True)
    s = dict(backend.settings.__dict__)
    code = POLLER.format(
        root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        tests=os.path.dirname(os.path.abspath(__file__)),
        settings=s,
        cache=str(tmp_path / "cache"),
        batch_dir=backend.batch_dir,
    )
    env = dict(os.environ, GEMINI_API_KEY=SECRET, FAKE_OPENAI_KEY=SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (server.jobs and server.jobs["job1"]["reads"] >= 2):
        time.sleep(0.05)
    assert server.jobs, proc.communicate(timeout=5)
    os.kill(proc.pid, signal.SIGKILL)  # between submit and results
    proc.wait()
    records = os.listdir(backend.batch_dir)
    assert len(records) == 1 and files.read_json(os.path.join(backend.batch_dir, records[0]))["job"]
    server.batch_states = ["succeeded"]
    answers = backend.complete_many(_requests(3))
    assert answers == ["1. Who wrote Dune ?"] * 3 and len(server.jobs) == 1  # polled, not submitted again
    assert backend.budget.calls == 3 and os.listdir(backend.batch_dir) == []


# ---------------------------------------------------------------------------- the judge
def test_the_judge_drops_a_mislabelled_candidate():
    judged = []

    def script(request):
        if request.system.startswith("You label inputs"):
            judged.append(request.turns[-1]["content"])
            return "location" if "Everest" in request.turns[-1]["content"] else "human"
        return "1. Who climbed Everest first ?\n2. Where is Mount Everest ?\n3. Who wrote Dracula ?"

    teacher = ScriptedBackend(TeacherSettings(kind="scripted"), script=script)
    config = _config(mode="label_conditioned", per_example=3, filters_verify="judge")
    filt = AugmentationFilter(TREC, [], [])
    kept, stats = Llm2llm(_ctx(config, teacher)).augment(0, [PARENT], {}, filt)
    assert [k["input"] for k in kept] == ["Who wrote Dracula ?"]  # both Everest ones judged 'location'
    assert stats["drops"]["unverified"] == 2 and stats["judge_requests"] == 3 and len(judged) == 3
    assert "human" not in judged[0]  # the judge is not told the intended class
    assert not filt.is_duplicate("Where is Mount Everest ?")  # an unverified input no longer counts as kept
    # numeric tasks: the judge's final number must equal the example's
    gsm = TASKS["gsm8k"]
    assert replies.parse_judgement("3 + 4 = 7\n#### 7", gsm) == gsm.gold({"output": "x\n#### 7"})
    assert replies.parse_judgement('{"solution": "3 + 4", "final_answer": "7"}', gsm) == "7"


# ---------------------------------------------------------------------------- the estimate and the spend
def test_the_estimate_bounds_and_matches_what_the_server_counted(served):
    server, make = served
    server.default_text = "1. Who wrote Dune ?"
    backend = make(price_input=1.0, price_output=2.0)
    seed_set = [dict(PARENT, id=f"s{i}", input=f"Who wrote the novel called number {i} ?") for i in range(6)]
    config = _config(mode="label_conditioned", per_example=2, requests_per_example=2)
    ctx = _ctx(config, backend, seed_set)
    est = estimate_teacher_use(ctx, iterations=3)
    method = Llm2llm(ctx)
    for i in range(2):  # every seed example wrong in both rounds: the estimate's worst case
        method.augment(i, seed_set, {}, AugmentationFilter(TREC, [], []))
    spent = backend.budget.spent
    assert spent["calls"] == est["requests"] == 6 * 2 * 2 == server.usage["calls"]
    assert spent["input_tokens"] == server.usage["input_tokens"]
    assert spent["output_tokens"] == server.usage["output_tokens"] <= est["output_tokens"]
    if (
        server.flavor == "gemini"
    ):  # counted by the API (countTokens) on one request, scaled by length for the rest
        assert abs(est["input_tokens"] - spent["input_tokens"]) <= 0.02 * spent["input_tokens"]
    else:  # no count endpoint: four characters a token, within a factor of two of any real tokenizer
        assert spent["input_tokens"] / 2 <= est["input_tokens"] <= 2 * spent["input_tokens"]
    assert spent["cost_usd"] == pytest.approx(
        (spent["input_tokens"] + 2 * spent["output_tokens"]) / 1e6, abs=1e-6
    )
    assert est["cost_usd"] >= spent["cost_usd"]
    line = describe_estimate(est, len(seed_set))
    assert "24 requests" in line and "at most" in line and "$" in line


# ---------------------------------------------------------------------------- config
def test_teacher_config_errors_are_one_line():
    import jax

    from llm2llm_jax.common.errors import ConfigError

    cases = [
        (dict(mode="labels"), "config.teacher.mode='labels': choose one of"),
        (dict(mode="label_conditioned", task="gsm8k"), "has none; use 'example'"),
        (dict(requests_per_example=4), "use at most teacher.per_example=3"),
        (dict(batch=True, kind="local"), "set teacher.batch=False"),
        (dict(filters_verify="maybe"), "config.filters.verify='maybe': choose one of"),
    ]
    for teacher, message in cases:
        task = teacher.pop("task", "trec")
        c = _config(**teacher)
        c.task, c.iterations, c.data.source, c.model.source = task, 2, "trec_offline", "smollm2"
        with pytest.raises(
            ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
        ):
            checks.validate(c, jax.devices())


def test_an_older_run_without_the_new_teacher_fields_resumes_when_they_keep_its_behaviour(tmp_path):
    from llm2llm_jax.common.errors import RunError

    c = _config()
    old = snapshot.snapshot(c)
    for key in ("mode", "requests_per_example", "structured", "batch", "batch_poll_seconds"):
        del old["teacher"][key]
    del old["filters"]["verify"], old["filters"]["judge_model"]
    files.write_json(str(tmp_path / "config.json"), old)
    with pytest.raises(RunError, match="teacher.mode"):
        snapshot.check_snapshot(c, str(tmp_path))  # 'auto' would now ask label-conditioned questions
    c.teacher.mode, c.teacher.structured = "example", False
    snapshot.check_snapshot(c, str(tmp_path))


def test_a_local_teacher_other_than_the_student_is_loaded_for_itself(tmp_path, monkeypatch):
    """teacher.model naming another model loads that one (the student is not used); '' , 'student' or the
    student's own name reuse the student's base weights, and the teacher is labelled with the student's
    name."""
    from loop_harness import tiny_student

    from llm2llm_jax.teacher import local
    from llm2llm_jax.teacher.factory import backend_from_config

    tiny = tiny_student()
    loaded, used = [], []
    monkeypatch.setattr(
        local, "load_pretrained", lambda source, path="", **kw: loaded.append((source, path)) or tiny
    )

    def student():
        used.append(True)
        return tiny

    for model, student_name, expect_loaded, expect_label in [
        ("smollm2", "gemma3_270m", [("smollm2", "")], "smollm2"),
        ("/models/t.gguf", "smollm2", [("gguf", "/models/t.gguf")], "/models/t.gguf"),
        ("", "gemma3_270m", [], "gemma3_270m"),
        ("student", "smollm2", [], "smollm2"),
        ("gemma3_270m", "gemma3_270m", [], "gemma3_270m"),
    ]:
        loaded.clear(), used.clear()
        c = _config(kind="local", model=model)
        backend = backend_from_config(c.teacher, str(tmp_path), student=student, student_name=student_name)
        assert loaded == expect_loaded and bool(used) == (not expect_loaded), model
        assert backend.settings.model == expect_label
