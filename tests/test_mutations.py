"""The mutation list (tools/mutations.py) stays in step with the code: every mutation applies exactly once,
parses, and names tests that exist. Running the mutations themselves is `python tools/mutation_test.py`."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import mutation_test


def test_every_mutation_applies_to_the_current_code():
    assert mutation_test.check_all(mutation_test.MUTATIONS) == []
    assert len(mutation_test.MUTATIONS) >= 40


def test_a_mutation_whose_text_is_gone_is_reported():
    stale = mutation_test.Mutation(
        "stale",
        "llm2llm_jax/student/train.py",
        (("no such text anywhere", "x"),),
        ("tests/test_train.py::test_no_such_test",),
        "nothing",
    )
    problems = mutation_test.check_all([stale])
    assert any("occurs 0 times" in p for p in problems)
    missing_test = mutation_test.Mutation(
        "t",
        "llm2llm_jax/student/recipe.py",
        (("def warmup_steps(", "def warmup_steps("),),
        ("tests/test_train.py::test_no_such_test",),
        "nothing",
    )
    assert mutation_test.check_all([missing_test]) == [
        "mutation t: no test test_no_such_test in tests/test_train.py"
    ]
