"""MathChecker: equivalent forms count, wrong answers don't, and nothing hangs or raises."""

from __future__ import annotations

import os
import time

import pytest

from rsim_env.checkers import math as math_checker
from rsim_env.checkers.base import Checker
from rsim_env.checkers.math import MAX_ANSWER_CHARS, MathChecker
from rsim_env.checkers.worker import WorkerCrashedError, WorkerProcess, WorkerTimeoutError
from rsim_env.tasks.task import Task

TIMEOUT = 3.0


def task(answer: str | None, **metadata) -> Task:
    return Task(id="t", prompt="What is it?", kind="math" if answer is not None else "text",
                answer=answer, metadata=metadata)


@pytest.fixture(scope="module")
def checker() -> MathChecker:
    checker = MathChecker(timeout=TIMEOUT)
    checker.start()  # start-up is not part of any per-answer time bound below
    return checker


def test_is_a_checker():
    assert isinstance(MathChecker(), Checker)


EQUIVALENT = [
    # fractions, decimals, percent
    (r"\boxed{0.5}", "1/2"),
    (r"\boxed{1/2}", "0.5"),
    (r"\boxed{50\%}", "0.5"),
    ("The answer is 50%.", "50"),
    (r"\boxed{0.75}", r"\frac{3}{4}"),
    (r"\boxed{-\frac{2}{4}}", "-0.5"),
    (r"\boxed{0.3333333}", "1/3"),
    # LaTeX forms
    (r"\boxed{\frac{1}{2}}", "0.5"),
    (r"\boxed{\dfrac{1}{2}}", r"\frac12"),
    (r"\boxed{\tfrac{3}{6}}", "1/2"),
    (r"\boxed{\frac{\sqrt{3}}{3}}", r"\frac{1}{\sqrt{3}}"),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}"),
    (r"\boxed{\sqrt{2}/2}", "sqrt(2)/2"),
    (r"\boxed{2\pi}", r"\pi \cdot 2"),
    (r"\boxed{\pi r^2}", r"r^2\pi"),
    (r"\boxed{90^\circ}", "90"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3, \pi/2)"),
    (r"\boxed{\{1, 2\}}", "2, 1"),
    (r"\boxed{2^{n-1}}", "2^(n-1)"),
    # plain-text math that math-verify alone misreads
    (r"\boxed{252}", "C(10, 5)"),
    (r"\boxed{\binom{n+1}{2m+1}}", "C(n+1, 2m+1)"),
    (r"\boxed{1024}", "2**10"),
    (r"\boxed{12}", "3·4"),
    # thousands separators
    (r"\boxed{1,234}", "1234"),
    ("The answer is 1,234,567.", "1234567"),
    ("#### 2,500", "2500"),
    # units and words around the number
    (r"\boxed{12 apples}", "12"),
    ("The answer is $5.00.", "5"),
    ("Answer: 5 dollars", "5"),
    (r"\boxed{\$18}", "18"),
    (r"\boxed{\text{42 cm}}", "42"),
    ("The answer is x = 7.", "7"),
    ("The final answer is 12 apples", "12 apples"),
    # words
    (r"\boxed{No}", "no"),
]


@pytest.mark.parametrize("response, reference", EQUIVALENT)
def test_equivalent_answers_are_correct(checker, response, reference):
    result = checker.check(response, task(reference))
    assert result.correct, result
    assert result.formatted


NOT_EQUIVALENT = [
    (r"\boxed{41}", "42"),
    (r"\boxed{0.33}", "1/3"),
    (r"\boxed{1,235}", "1234"),
    (r"\boxed{13 apples}", "12"),
    (r"\boxed{\frac{1}{3}}", "0.5"),
    (r"\boxed{\sqrt{3}}", r"\sqrt{2}"),
    (r"\boxed{2^{n}}", "2^(n-1)"),
    (r"\boxed{yes}", "no"),
    (r"\boxed{not 12}", "12"),
    (r"\boxed{-12}", "12"),
]


@pytest.mark.parametrize("response, reference", NOT_EQUIVALENT)
def test_different_answers_are_wrong(checker, response, reference):
    result = checker.check(response, task(reference))
    assert not result.correct, result
    assert result.reason


def test_integers_are_decided_in_process_without_the_worker(monkeypatch):
    def no_worker():
        raise AssertionError("the fast path must not touch the math-verify worker")

    monkeypatch.setattr(math_checker, "_shared_worker", no_worker)
    checker = MathChecker()
    right = checker.check(r"So 5 + 37 = 42, the answer is \boxed{42}.", task("42"))
    wrong = checker.check(r"So 5 + 37 = 41, the answer is \boxed{41}.", task("42"))
    words = checker.check("The answer is 1,234 apples.", task("1234"))
    prose = checker.check(r"\boxed{I do not know}", task("42"))
    assert (right.correct, wrong.correct, words.correct, prose.correct) == (True, False, True, False)
    assert {right.details["method"], wrong.details["method"]} == {"exact", "numeric"}


def test_fast_path_takes_microseconds():
    checker, reference = MathChecker(), task("42")
    start = time.perf_counter()
    for i in range(5000):
        checker.check(rf"The total is \boxed{{{40 + i % 4}}}.", reference)
    per_check = (time.perf_counter() - start) / 5000
    assert per_check < 100e-6, f"{per_check * 1e6:.1f} us per check"


def test_multiple_boxed_answers_last_one_counts(checker):
    result = checker.check(r"First \boxed{41}, but checking again: \boxed{42}", task("42"))
    assert result.correct
    assert result.details["boxed_answers"] == ["41", "42"]
    hedge = checker.check(r"\boxed{42} or maybe \boxed{41}", task("42"))
    assert not hedge.correct


def test_formatted_only_for_explicit_answers(checker):
    assert checker.check(r"\boxed{42}", task("42")).formatted
    assert checker.check("The answer is 42", task("42")).formatted
    unformatted = checker.check("so it is 42", task("42"))
    assert unformatted.correct and not unformatted.formatted
    assert unformatted.details["extraction"] == "last_number"


def test_details_name_the_deciding_method(checker):
    assert checker.check(r"\boxed{42}", task("42")).details["method"] == "exact"
    assert checker.check(r"\boxed{42.0}", task("42")).details["method"] == "numeric"
    hard = checker.check(r"\boxed{\frac{\sqrt{3}}{3}}", task(r"1/\sqrt{3}"))
    assert hard.correct and hard.details["method"] == "math_verify"


@pytest.mark.parametrize("response, reason", [
    (None, "not str"),
    (123, "not str"),
    ("I have no idea.", "no answer found"),
    (r"\boxed{" + "9" * (MAX_ANSWER_CHARS + 1) + "}", "too long"),
])
def test_unusable_responses_are_wrong_with_a_reason(checker, response, reason):
    result = checker.check(response, task("42"))
    assert not result.correct
    assert reason in result.reason


def test_task_without_reference(checker):
    result = checker.check(r"\boxed{1}", task(None))
    assert not result.correct and "no reference" in result.reason


PATHOLOGICAL = {
    "100 kB of text": "blah " * 20_000 + r"\boxed{7}",
    "100 kB of digits": "9" * 100_000,
    "100 kB boxed": r"\boxed{" + "x+" * 50_000 + "1}",
    "10k nested braces": r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "10k nested boxes": r"\boxed{" * 10_000 + "1" + "}" * 10_000,
    "tower 9^9^9^9": r"\boxed{9^{9^{9^9}}}",
    "python power tower": r"\boxed{10**10**10}",
    "huge factorial": r"\boxed{(10^{100})!}",
    "deep parentheses": r"\boxed{" + "(" * 400 + "1" + ")" * 400 + "}",
    "sqrt tower": r"\boxed{" + r"\sqrt{" * 300 + "2" + "}" * 300 + "}",
    "garbage latex": r"\boxed{\frac{\frac{}{}{\left(\right.}}\\\\\begin{}}",
    "unicode soup": "The answer is " + "∑∫√π∞≠" * 100,
    "null bytes": "The answer is \x00\x00\x00 7",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_answers_return_within_the_timeout(checker, name):
    start = time.perf_counter()
    result = checker.check(PATHOLOGICAL[name], task("1234567"))
    elapsed = time.perf_counter() - start
    assert not result.correct
    assert result.reason
    assert elapsed < TIMEOUT + 2.0, f"{name}: {elapsed:.1f}s ({result.reason})"


def test_pathological_answer_can_still_be_right(checker):
    assert checker.check(PATHOLOGICAL["100 kB of text"], task("7")).correct
    assert checker.check(PATHOLOGICAL["10k nested boxes"], task("1")).correct


def test_timeout_kills_the_worker_and_the_next_call_restarts_it():
    impatient = MathChecker(timeout=0.3)
    impatient.start()
    start = time.perf_counter()
    result = impatient.check(r"\boxed{9^{9^{9^9}}}", task(r"\sqrt{2}"))
    elapsed = time.perf_counter() - start
    assert not result.correct and "timed out" in result.reason
    assert elapsed < 2.0
    patient = MathChecker(timeout=TIMEOUT)
    assert patient.check(r"\boxed{\frac{\sqrt{2}}{2}}", task(r"1/\sqrt{2}")).correct


def test_scorer_can_accept_what_equivalence_rejects():
    def scorer(answer: str, t: Task) -> float:
        return 1.0 if answer.lower() == "forty-two" else 0.0

    checker = MathChecker(timeout=TIMEOUT, scorer=scorer)
    result = checker.check(r"\boxed{forty-two}", task("42"))
    assert result.correct and result.details["method"] == "scorer"
    assert result.details["score"] == 1.0
    assert not checker.check(r"\boxed{41}", task("42")).correct


def test_partial_scores_are_not_correct():
    checker = MathChecker(scorer=lambda answer, t: 0.99)
    assert not checker.check(r"\boxed{41}", task("42")).correct


def test_scorer_errors_are_contained():
    def broken(answer: str, t: Task) -> float:
        raise ZeroDivisionError("oops")

    result = MathChecker(scorer=broken).check(r"\boxed{41}", task("42"))
    assert not result.correct
    assert "ZeroDivisionError" in result.details["scorer_error"]
    assert MathChecker(scorer=broken).check(r"\boxed{42}", task("42")).correct


def test_scorer_only_rejects_equal_but_unreduced_fractions():
    def lowest_terms(answer: str, t: Task) -> float:
        return 1.0 if answer.replace(" ", "") == t.answer else 0.0

    checker = MathChecker(scorer=lowest_terms, scorer_only=True)
    assert checker.check(r"\boxed{1/2}", task("1/2")).correct
    unreduced = checker.check(r"\boxed{2/4}", task("1/2"))
    assert not unreduced.correct and unreduced.details["method"] == "scorer"


def test_accepted_answers_replace_a_prose_reference(checker):
    prose = task("C(10, 5), or equivalently 252", accepted_answers=["C(10, 5)", "252"])
    assert checker.check(r"\boxed{252}", prose).correct
    assert checker.check(r"\boxed{\binom{10}{5}}", prose).correct
    assert not checker.check(r"\boxed{251}", prose).correct


def test_text_answers_are_compared_as_text(checker):
    free = task("No integer solutions", answer_type="free_text")
    assert checker.check("The answer is: no integer solutions.", free).correct
    assert not checker.check(r"\boxed{0}", free).correct
    assert not checker.check(r"\boxed{No integer solution exists for n}", free).correct


def test_invalid_configuration():
    with pytest.raises(ValueError):
        MathChecker(timeout=0)
    with pytest.raises(ValueError):
        MathChecker(scorer_only=True)


# -- the worker itself -----------------------------------------------------------------------------
def test_worker_returns_results_and_survives_errors():
    worker = WorkerProcess("operator:truediv", memory_limit_mb=None)
    try:
        assert worker.call(6, 3, timeout=10) == 2.0
        with pytest.raises(WorkerCrashedError, match="ZeroDivisionError"):
            worker.call(1, 0, timeout=10)
        assert worker.starts == 1 and worker.call(1, 4, timeout=10) == 0.25
    finally:
        worker.close()
    assert not worker.alive


def test_worker_timeout_kills_and_restarts():
    worker = WorkerProcess("time:sleep")
    try:
        start = time.perf_counter()
        with pytest.raises(WorkerTimeoutError):
            worker.call(30, timeout=0.3)
        assert time.perf_counter() - start < 2.0
        assert not worker.alive
        assert worker.call(0, timeout=10) is None
        assert worker.starts == 2
    finally:
        worker.close()


def test_worker_death_is_reported_and_recovered():
    worker = WorkerProcess("os:_exit")
    try:
        with pytest.raises(WorkerCrashedError, match="died"):
            worker.call(3, timeout=10)
        with pytest.raises(WorkerCrashedError):
            worker.call(3, timeout=10)
        assert worker.starts == 2
    finally:
        worker.close()


def test_forked_process_gets_its_own_worker():
    """After fork the child must not talk over the parent's pipes (SubprocVecEnv uses fork)."""
    worker = WorkerProcess("operator:add")
    try:
        assert worker.call(1, 2, timeout=10) == 3
        parent_pid = worker._proc.pid
        pid = os.fork()
        if pid == 0:  # the child: its own worker, and the parent's left alone
            ok = worker.call(2, 3, timeout=10) == 5 and worker._proc.pid != parent_pid
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert worker.call(3, 4, timeout=10) == 7 and worker._proc.pid == parent_pid
    finally:
        worker.close()


def test_worker_start_failure_is_reported():
    worker = WorkerProcess("operator:add", preload=("no_such_module_for_rsim",))
    with pytest.raises(WorkerCrashedError, match="no_such_module_for_rsim"):
        worker.call(1, 2, timeout=10)


def test_worker_memory_limit_turns_a_memory_bomb_into_an_error():
    worker = WorkerProcess("operator:mul", memory_limit_mb=512)
    try:
        with pytest.raises(WorkerCrashedError, match="MemoryError"):
            worker.call(b"x", 2 * 1024**3, timeout=20)
        assert worker.call(3, 4, timeout=10) == 12
    finally:
        worker.close()
