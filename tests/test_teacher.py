"""Teacher backends against local servers speaking the Gemini REST and OpenAI chat APIs: the real
google-genai client and the real HTTP path, with 429s, 500s, timeouts, garbage, budgets and the cache."""

import os

import pytest
from fake_servers import ScriptedServer

from llm2llm_jax.data.tasks import TASKS
from llm2llm_jax.teacher.base import TeacherError, TeacherRequest, TeacherSettings
from llm2llm_jax.teacher.budget import BudgetExceeded
from llm2llm_jax.teacher.cache import DiskCache
from llm2llm_jax.teacher.factory import make_backend
from llm2llm_jax.teacher.filters import AugmentationFilter
from llm2llm_jax.teacher.prompts import build_messages
from llm2llm_jax.teacher.replies import parse_examples

SECRET = "test-key-do-not-store-123"
REPLY = (
    "1. Input: Who invented the telephone ?\n   Output: human\n"
    "2. Input: Where is Lake Titicaca ?\n   Output: location"
)


@pytest.fixture(params=["gemini", "openai"])
def served(request, monkeypatch, tmp_path):
    server = ScriptedServer(request.param, default_text=REPLY)
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("FAKE_OPENAI_KEY", SECRET)

    def make(**overrides):
        settings = dict(
            kind=request.param,
            model="fake-model",
            base_url=server.url + ("/v1" if request.param == "openai" else ""),
            api_key_env="FAKE_OPENAI_KEY",
            initial_delay=0.01,
            max_delay=0.05,
            timeout=2.0,
            max_attempts=4,
            concurrency=2,
        )
        settings.update(overrides)
        return make_backend(TeacherSettings(**settings), DiskCache(str(tmp_path / "cache")))

    yield server, make
    server.close()


def _request(seed=1):
    task = TASKS["trec"]
    system, turns = build_messages(task, {"input": "Who wrote Hamlet ?", "output": "HUM"}, " location", 2)
    return TeacherRequest(system=system, turns=turns, seed=seed)


def test_generates_and_parses_augmentations(served):
    server, make = served
    backend = make()
    text = backend.complete(_request())
    examples = parse_examples(text, TASKS["trec"])
    assert [e["input"] for e in examples] == ["Who invented the telephone ?", "Where is Lake Titicaca ?"]
    body = server.requests[0]["body"]
    sent = str(body)
    assert (
        "Who wrote Hamlet ?" in sent
        and "Correct output: human" in sent
        and "Student's output: location" in sent
    )
    if server.flavor == "gemini":
        assert server.requests[0]["path"].endswith("models/fake-model:generateContent")
        assert body["generationConfig"]["seed"] == 1 and "systemInstruction" in body
        assert server.requests[0]["headers"].get("x-goog-api-key") == SECRET
    else:
        assert server.requests[0]["path"] == "/v1/chat/completions"
        assert body["messages"][0]["role"] == "system" and body["seed"] == 1
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_survives_429_500_timeouts_and_garbage(served):
    server, make = served
    server.steps = [("status", 429), ("status", 500), ("sleep", 3.0, "too late"), ("garbage",), ("ok", REPLY)]
    backend = make(max_attempts=5)
    assert backend.complete(_request()) == REPLY
    assert backend.stats["retries"] == 4 and len(server.requests) == 5


def test_the_servers_own_delay_is_waited_capped_and_counted(served):
    """A 429 or 503 that says how long to wait (OpenAI-compatible servers: Retry-After; Gemini: RetryInfo's
    retryDelay) is retried after that delay, capped by teacher.max_server_delay, instead of the backoff."""
    server, make = served
    unit = "s" if server.flavor == "gemini" else ""
    server.steps = [
        ("status", 429, f"2{unit}"),
        ("status", 503, f"900{unit}"),
        ("status", 500),
        ("ok", REPLY),
    ]
    backend = make(max_attempts=4, max_server_delay=5.0, initial_delay=0.01, max_delay=0.05)
    waits = []
    backend.sleep = waits.append
    assert backend.complete(_request()) == REPLY
    assert waits[:2] == [2.0, 5.0] and 0 <= waits[2] <= 0.05  # the last 500 named no delay: backoff
    assert backend.stats["retries"] == 3 and backend.stats["server_delayed"] == 2


def test_retry_after_values_are_read_as_seconds_or_dates():
    from llm2llm_jax.teacher.base import retry_after_seconds
    from llm2llm_jax.teacher.gemini import retry_info_delay

    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("1.5s") == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:30 GMT", now=1792567700.0) == pytest.approx(10.0)
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT", now=1792567700.0) == 0.0  # already past
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}
    assert retry_info_delay({"error": {"code": 429, "details": [{"@type": "other"}, info]}}) == 31.0
    assert retry_info_delay({"error": {"code": 429}}) is None and retry_info_delay(None) is None


def test_gives_up_after_max_attempts_and_does_not_retry_client_errors(served):
    server, make = served
    server.steps = [("status", 503)] * 4
    with pytest.raises(TeacherError, match="after 4 attempts"):
        make().complete(_request())
    server.steps = [("status", 400)]
    before = len(server.requests)
    with pytest.raises(TeacherError, match="400"):
        make().complete(_request(seed=2))
    assert len(server.requests) == before + 1


def test_cache_means_never_paying_twice_and_holds_no_secret(served, tmp_path):
    server, make = served
    first = make()
    replies = first.complete_many([_request(seed=s) for s in range(4)])
    assert len(server.requests) == 4
    second = make()  # a new run over the same cache directory
    assert second.complete_many([_request(seed=s) for s in range(4)]) == replies
    assert len(server.requests) == 4 and second.stats["cached"] == 4
    for root, _, files in os.walk(tmp_path / "cache"):
        for f in files:
            with open(os.path.join(root, f)) as fh:
                assert SECRET not in fh.read()


def test_budget_stops_cleanly(served):
    server, make = served
    backend = make(max_calls=2, concurrency=1)
    backend.complete(_request(seed=1))
    backend.complete(_request(seed=2))
    with pytest.raises(BudgetExceeded, match="2 of 2 calls"):
        backend.complete(_request(seed=3))
    assert len(server.requests) == 2
    assert backend.complete(_request(seed=1)) == REPLY  # cached answers stay free


def test_malformed_teacher_text_is_counted_not_fatal(served):
    """Chatter, an item without an output and one without an input come back through the real client, are
    parsed into candidates, and are counted as drops; the well-formed item is kept."""
    server, make = served
    server.steps = [
        (
            "ok",
            "Sure! Here are some ideas:\n1. Input: Who discovered penicillin ?\n"
            "2. Output: human\nmaybe something about phones\n"
            "3. Input: Where is Lima ?\n   Output: location",
        )
    ]
    text = make().complete(_request())
    cands = parse_examples(text, TASKS["trec"])
    assert cands == [
        {"input": "Who discovered penicillin ?", "raw_output": ""},
        {"input": "", "raw_output": "human\nmaybe something about phones"},
        {"input": "Where is Lima ?", "raw_output": "location"},
    ]
    filt = AugmentationFilter(TASKS["trec"], ["Who wrote Hamlet ?"], [])
    kept, drops = filt.apply(cands)
    assert kept == [{"input": "Where is Lima ?", "output": "LOC"}]
    assert drops["empty"] == 2 and sum(drops.values()) == 2
    assert parse_examples("Sorry, I cannot help with that.", TASKS["trec"]) == []  # no item at all


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(TeacherError, match="GEMINI_API_KEY"):
        make_backend(TeacherSettings(kind="gemini"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        make_backend(TeacherSettings(kind="openai"))


def test_parsing_and_filters_on_hand_written_replies():
    trec, gsm = TASKS["trec"], TASKS["gsm8k"]
    reply = (
        "Here you go:\n1. Input: What is the capital of Peru ?\n   Output: location\n"
        "2) **Input:** How many moons does Mars have ?\n**Output:** number\n"
        "3. Input: Who painted the Mona Lisa ?\n   Output: painter\n"
        "4. Input: What is the capital of Peru ?\n   Output: location\n"
        "5. Input: Who wrote Hamlet ?\n   Output: human\n6. Input:\n   Output: human"
    )
    cands = parse_examples(reply, trec)
    assert len(cands) == 6 and cands[1]["input"] == "How many moons does Mars have ?"
    filt = AugmentationFilter(
        trec, seed_inputs=["Where is the Eiffel Tower ?"], test_inputs=["Who wrote Hamlet ?"]
    )
    kept, drops = filt.apply(cands)
    assert [k["output"] for k in kept] == ["LOC", "NUM"]
    assert drops == {
        "empty": 1,
        "runaway": 0,
        "invalid_label": 1,
        "label_mismatch": 0,
        "no_final_answer": 0,
        "test_leak": 1,
        "duplicate": 1,
    }
    math = parse_examples(
        "1. Question: Ann has 2 cats and buys 3 more. How many?\n   Answer: 2 + 3 = 5\n   #### 5\n"
        "2. Question: Bob has 4 pens.\n   Answer: He has four pens.",
        gsm,
    )
    kept, drops = AugmentationFilter(gsm, [], []).apply(math)
    assert len(kept) == 1 and kept[0]["output"].endswith("#### 5") and drops["no_final_answer"] == 1
    same = AugmentationFilter(trec, [], [], same_label=True)
    kept, drops = same.apply([dict(c, parent_label="LOC") for c in cands[:2]])
    assert [k["output"] for k in kept] == ["LOC"] and drops["label_mismatch"] == 1
    system, turns = build_messages(
        trec, {"input": "Where is Lima ?", "output": "LOC"}, "human", 3, same_label=True
    )
    assert turns[-1]["content"].endswith("Write 3 new example(s) whose correct output is also location.")
    runaway = [{"input": "x " * 3000, "raw_output": "human"}]
    assert AugmentationFilter(trec, [], []).apply(runaway)[1]["runaway"] == 1


def test_local_smollm2_teacher_is_reproducible_per_request(smollm2, tmp_path):
    """The offline teacher: real SmolLM2 sampling; a request's answer does not depend on its batch
    neighbours."""
    cfg, params, tok, _ = smollm2
    settings = TeacherSettings(kind="local", max_output_tokens=24, temperature=0.7, top_p=0.95)
    alone = make_backend(settings, DiskCache(str(tmp_path / "a")), model=(cfg, params, tok), batch_size=4)
    together = make_backend(
        TeacherSettings(**{**settings.__dict__}),
        DiskCache(str(tmp_path / "b")),
        model=(cfg, params, tok),
        batch_size=4,
    )
    a = alone.complete(_request(seed=5))
    both = together.complete_many([_request(seed=9), _request(seed=5)])
    assert a.strip() and both[1] == a and both[0] != a
    again = make_backend(
        TeacherSettings(**{**settings.__dict__}),
        DiskCache(str(tmp_path / "a")),
        model=(cfg, params, tok),
        batch_size=4,
    )
    assert again.complete(_request(seed=5)) == a and again.stats == {"calls": 0, "cached": 1, "retries": 0}


def test_local_teacher_told_a_runs_requests_runs_every_call_on_one_program_compiled_ahead(
    tmp_path, monkeypatch
):
    """Told the requests a run may send, the local teacher compiles one program that holds them all; calls
    on any subset (which alone would share a longer prefix or need a narrower rest) run that program, and
    answer as the same requests do at their own shapes (the shape changes only the padding). Requests that
    are not among them are decoded at their own shape."""
    from loop_harness import tiny_student

    from llm2llm_jax.common import compilations
    from llm2llm_jax.student import predict

    task = TASKS["trec"]
    questions = [
        "Who is it ?",
        "Who wrote it ?",
        "Where " * 30 + "is Lima ?",
        "Why ?",
        "What " * 12 + "is it ?",
    ]
    labels = ["HUM", "HUM", "LOC", "DESC", "ENTY"]
    requests = [
        TeacherRequest(*build_messages(task, {"input": q, "output": y}, "", 1), seed=s)
        for s, (q, y) in enumerate(zip(questions, labels))
    ]
    settings = TeacherSettings(kind="local", max_output_tokens=4, temperature=0.7, top_p=0.95)
    model = tiny_student()
    # two requests not among them, which begin differently but fit the expected width
    other = [
        TeacherRequest(f"{start} {r.system}", r.turns, seed=9)
        for start, r in zip(("First,", "Then, again,"), requests)
    ]
    calls = [requests[:2], requests[2:3], requests[3:], other]

    def answers(tell, cache):
        monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})  # as in a fresh process
        monkeypatch.setattr(compilations, "_ahead", {})
        backend = make_backend(settings, DiskCache(str(tmp_path / cache)), model=model, batch_size=2)
        shapes, ahead = [], []

        def spy(cfg, params, tok, rests, batch_size, *, width, prefix, **kw):
            shapes.append((len(prefix), width))
            return real(cfg, params, tok, rests, batch_size, width=width, prefix=prefix, **kw)

        real = predict.decode_batch
        monkeypatch.setattr(predict, "decode_batch", spy)
        monkeypatch.setattr(compilations, "waited", lambda future: ahead.append(future) or future.result())
        if tell:
            backend.expect(requests)
            assert len(compilations._ahead) == 1
        return [backend.complete_many(c) for c in calls], shapes, ahead, backend

    alone, alone_shapes, _, _ = answers(False, "alone")
    told, told_shapes, ahead, backend = answers(True, "told")
    assert len(set(alone_shapes)) == 4  # each call at its own shape
    # the calls on requests it was told of run the program compiled ahead; requests that do not begin
    # with their shared prefix are decoded at their own shape
    assert set(told_shapes[:3]) == {backend.expected[1]} and len(ahead) == 3
    assert told_shapes[3] == alone_shapes[3] != backend.expected[1]
    assert told == alone


def test_local_teacher_decodes_a_call_in_batches_of_one_shape(tmp_path, monkeypatch):
    """Requests of different lengths, decoded in several batches, run one program: every batch is padded to
    the widest rest of the whole call after the prefix they all share, and each answer is recorded."""
    from loop_harness import tiny_student

    from llm2llm_jax.student import predict

    monkeypatch.setattr(predict, "_COMPILED_WIDTHS", {})  # no widths from other tests
    shapes = []

    def spy(cfg, params, tok, rests, batch_size, *, width, prefix, **kw):
        shapes.append((width, len(prefix)))
        return real(cfg, params, tok, rests, batch_size, width=width, prefix=prefix, **kw)

    real = predict.decode_batch
    monkeypatch.setattr(predict, "decode_batch", spy)
    task = TASKS["trec"]
    questions = ["Who ?", "Who wrote it ?", "Where " * 40 + "is Lima ?", "Why ?", "What " * 20 + "is it ?"]
    requests = [
        TeacherRequest(*build_messages(task, {"input": q, "output": "HUM"}, "x", 1), seed=s)
        for s, q in enumerate(questions)
    ]
    settings = TeacherSettings(kind="local", max_output_tokens=4, temperature=0.7, top_p=0.95)
    backend = make_backend(settings, DiskCache(str(tmp_path)), model=tiny_student(), batch_size=2)
    answers = backend.complete_many(requests)
    widths = [len(backend._encode(r)) for r in requests]
    assert len(shapes) == 3 and len(set(shapes)) == 1  # three batches, one shape
    width, prefix = shapes[0]
    assert prefix >= 32 and width >= max(widths) - prefix and width < max(widths) - prefix + 32
    assert all(isinstance(a, str) for a in answers) and backend.stats["calls"] == 5
