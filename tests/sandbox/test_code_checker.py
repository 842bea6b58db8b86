"""CodeChecker and ProgramRunsChecker: extraction, assembly, verdicts and reasons, via the sandbox."""

from __future__ import annotations

import pytest

from rsim_env.checkers.code import CodeChecker, ProgramRunsChecker, assemble_program, extract_code
from rsim_env.tasks.task import Task

ADD_TASK = Task(
    id="add", kind="code", entry_point="add",
    prompt="Write add(a, b).",
    tests="def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n")
STUB_TASK = Task(
    id="stub", kind="code", entry_point="double",
    prompt="Complete double.",
    tests="def check(candidate):\n    assert candidate(4) == 8\n",
    metadata={"code_prompt": 'from typing import List\n\n\ndef double(x: int) -> int:\n    """Twice x."""\n'})


# -- extraction (pure, no sandbox) -----------------------------------------------------------------
def test_extract_prefers_the_last_block_that_defines_the_entry_point():
    response = ("First try:\n```python\ndef add(a, b):\n    return a - b\n```\nFixed:\n"
                "```python\ndef add(a, b):\n    return a + b\n```\nUsage:\n```python\nprint(add(1, 2))\n```")
    extracted = extract_code(response, "add")
    assert extracted is not None and extracted.fenced
    assert extracted.code == "def add(a, b):\n    return a + b\n"
    assert extract_code(response).code == "print(add(1, 2))\n"  # no entry point: the last block


def test_extract_reads_unclosed_fences_untagged_fences_and_plain_code():
    assert extract_code("```python\ndef f():\n    return 1").code == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n```").code == "x = 1\n"
    plain = extract_code("def f(x):\n    return x * 2")
    assert plain is not None and not plain.fenced
    assert extract_code("    return x * 2").code.strip() == "return x * 2"  # a body alone


def test_extract_finds_no_code_in_prose_or_other_languages():
    assert extract_code("The answer is that you should loop over the list.") is None
    assert extract_code("Yes") is None
    assert extract_code("```sql\nSELECT 1;\n```") is None
    assert extract_code("") is None


def test_assemble_puts_the_prompt_first_and_indents_a_bare_body():
    body = assemble_program("return x * 2\n", STUB_TASK)
    assert "def double(x: int) -> int:" in body and "\n    return x * 2\n" in body
    assert body.rstrip().endswith("check(double)")
    full = assemble_program("def double(x):\n    return x + x\n", STUB_TASK)
    assert full.index("from typing import List") < full.index("def double(x):\n    return x + x")


# -- verdicts (run in the sandbox) -----------------------------------------------------------------
@pytest.mark.sandbox
def test_correct_wrong_and_broken_answers_get_the_right_reasons():
    checker = CodeChecker()
    responses = {
        "correct": "```python\ndef add(a, b):\n    return a + b\n```",
        "wrong": "```python\ndef add(a, b):\n    return a * b\n```",
        "syntax": "```python\ndef add(a, b)\n    return a + b\n```",
        "runtime": "```python\ndef add(a, b):\n    return a + undefined\n```",
        "prose": "I would add the two numbers.",
        "loop": "```python\ndef add(a, b):\n    while True:\n        pass\n```",
    }
    results = dict(zip(responses, checker.check_many(list(responses.values()), [ADD_TASK] * len(responses))))
    assert results["correct"].correct and results["correct"].reason == "all tests passed"
    assert results["correct"].formatted
    assert not results["wrong"].correct
    assert results["wrong"].reason == "test failed: assert candidate(2, 3) == 5"
    assert results["syntax"].reason.startswith("syntax error:")
    assert results["runtime"].reason == "runtime error: NameError: name 'undefined' is not defined"
    assert results["prose"].reason == "no code found" and results["prose"].answer is None
    assert results["loop"].reason.startswith("timeout:")
    assert not any(r.correct for k, r in results.items() if k != "correct")
    assert results["wrong"].details["ended"] == "error"
    assert "check(add)" in results["wrong"].details["program"]


@pytest.mark.sandbox
@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()",
                                        "raise SystemExit"])
def test_exiting_before_the_tests_is_not_a_pass(exit_call):
    result = CodeChecker().check(f"```python\n{exit_call}\ndef add(a, b):\n    return 0\n```", ADD_TASK)
    assert not result.correct
    assert result.reason == "program exited before the tests finished"


@pytest.mark.sandbox
def test_the_pass_token_is_in_no_file_the_answer_can_read():
    forger = ("```python\nimport os, re, sys\nfound = []\nfor name in os.listdir('.'):\n"
              "    found += re.findall(r'[0-9a-f]{32}', open(name, errors='ignore').read())\n"
              "print(found[-1] if found else 'none')\nsys.exit(0)\n```")
    result = CodeChecker().check(forger, ADD_TASK)
    assert not result.correct
    assert result.details["stdout"].strip() == "none"


@pytest.mark.sandbox
def test_bare_body_completion_passes_under_the_prompt():
    result = CodeChecker().check("```python\nreturn x * 2\n```", STUB_TASK)
    assert result.correct, result.reason


@pytest.mark.sandbox
def test_program_runs_checker_compares_with_the_reference_output():
    task = Task(id="ca", kind="code", prompt="Print 1 to 3.", answer="for i in range(1, 4):\n    print(i)")
    checker = ProgramRunsChecker()
    good = checker.check("```python\nprint('1\\n2\\n3')\n```", task)
    different = checker.check("```python\nprint('1 2 3')\n```", task)
    crashes = checker.check("```python\nraise RuntimeError('boom')\n```", task)
    assert good.correct and "reference output" in good.reason
    assert not different.correct and different.reason == "output differs from the reference program's"
    assert not crashes.correct and crashes.reason == "runtime error: RuntimeError: boom"
