r"""The math checker: is the reasoner's final answer equivalent to the reference?

:class:`MathChecker` judges a response in up to three stages and stops at the first that decides:

1. **Fast path, in-process** (microseconds, no sympy): the answer is found with
   :func:`~rsim_env.checkers.answer.extract_answer`, then both it and the reference are normalized
   (``$``, ``\$``, ``\text{...}``, ``\,``, ``^\circ``, a trailing period, spaces, and case, which
   math-verify ignores as well) and compared as strings, then as exact numbers when both read as one
   number, possibly with words around it: ``12 apples``, ``$5.00``, ``5 dollars``,
   ``x = 5``, ``1,234`` (thousands separators), ``50%`` (a percentage matches both ``50`` and
   ``0.5``), ``3/4``, ``\frac{3}{4}``. Integers decide both ways here: ``41`` vs ``42`` is wrong
   without asking sympy. Two non-integers that differ by more than a relative ``1e-4`` are wrong
   too; closer ones (``0.3333333`` vs ``1/3``) go on to stage 3, which applies math-verify's own
   rounding. An answer without digits or LaTeX against a numeric reference is wrong at once.
2. **The suite's scorer**, if given (``scorer(answer, task) -> float``, e.g. reasoning-gym's
   ``score_answer``): a score of at least 1.0 means correct. It runs in-process, so it must be
   quick; an exception counts as score 0.
3. **math-verify** (``parse`` + ``verify``) in a worker process with a per-call timeout, for
   everything the fast path cannot settle (``\frac{\sqrt{3}}{3}`` vs ``1/\sqrt{3}``, sets,
   intervals, expressions). Plain-text math that math-verify misreads (``2**10``, ``C(10, 5)``) is
   rewritten as LaTeX first (:func:`plain_math_to_latex`). A call that outruns the timeout kills
   the worker (it restarts on the next call) and the answer counts as wrong with reason
   ``"math-verify timed out"``.

An answer is correct if any stage says so. ``scorer_only=True`` makes the scorer the only judge,
for tasks where the form is the point (reducing ``2/4`` to ``1/2`` must not accept ``2/4``).

A task's references are ``task.metadata["accepted_answers"]`` when present (the mathematical
forms of a prose reference, e.g. ``["C(10, 5)", "252"]`` for CHAMP's "C(10, 5), or equivalently
252"), else ``task.answer``; matching any of them is correct. When ``task.metadata["answer_type"]``
is ``"yes_no"`` or ``"free_text"`` only stage 1's text comparison applies: math-verify would read
prose such as "No integer solutions" as a product of single-letter variables.

The check never raises and never hangs: a non-string response, no answer, an answer longer than
:data:`MAX_ANSWER_CHARS`, a worker crash or a timeout all give ``correct=False`` with a reason.
The first answer that needs math-verify also waits for the worker to start (about a second,
at most 30 s; call :meth:`MathChecker.start` to pay this up front).
``CheckResult.details["method"]`` names the stage that decided (``"exact"``, ``"numeric"``,
``"scorer"``, ``"math_verify"``, or ``"none"``); ``formatted`` is whether the answer was boxed or
stated explicitly.

The worker is one process shared by every ``MathChecker`` in the process, started on first need,
so the parent never imports sympy; it is closed at exit.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rsim_env.checkers.answer import extract_answer
from rsim_env.checkers.base import CheckResult
from rsim_env.checkers.worker import WorkerCrashedError, WorkerProcess, WorkerTimeoutError

if TYPE_CHECKING:
    from rsim_env.tasks.task import Task

__all__ = ["MathChecker", "MAX_ANSWER_CHARS", "Scorer", "plain_math_to_latex"]

MAX_ANSWER_CHARS = 1000
"""Longer extracted answers are rejected without parsing: no real final answer is this long."""

Scorer = Callable[[str, "Task"], float]

_NUMERIC_TOLERANCE = Fraction(1, 10_000)
_TEXT_ANSWER_TYPES = frozenset({"yes_no", "free_text"})
_MAX_NUMBER_CHARS = 64  # longer digit strings go to math-verify (and never hit int() limits)


class MathChecker:
    """Judges math answers: fast exact/numeric path, optional scorer, then math-verify.

    Args:
        timeout: seconds one math-verify call may take before the worker is killed.
        scorer: ``scorer(answer, task) -> float``; a score >= 1.0 means correct.
        scorer_only: make the scorer the only judge (skip the equivalence stages).
    """

    def __init__(self, timeout: float = 5.0, scorer: Scorer | None = None, *,
                 scorer_only: bool = False) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}.")
        if scorer_only and scorer is None:
            raise ValueError("scorer_only=True needs a scorer.")
        self.timeout = float(timeout)
        self.scorer = scorer
        self.scorer_only = scorer_only

    def __repr__(self) -> str:
        return (f"MathChecker(timeout={self.timeout:g}, scorer={self.scorer!r}, "
                f"scorer_only={self.scorer_only})")

    def start(self) -> None:
        """Start the math-verify worker now (it otherwise starts on the first hard answer)."""
        _shared_worker().start()

    def check(self, response: str, task: Task) -> CheckResult:
        """Judge ``response`` against ``task``'s references; never raises, never hangs."""
        try:
            return self._check(response, task)
        except Exception as exc:  # a bug here must cost a reward, not the training run
            return CheckResult(False, None, f"checker error: {type(exc).__name__}: {exc}",
                               details={"method": "none"})

    def _check(self, response: str, task: Task) -> CheckResult:
        if not isinstance(response, str):
            return CheckResult(False, None, f"response is {type(response).__name__}, not str",
                               details={"method": "none"})
        extracted = extract_answer(response)
        if extracted is None:
            return CheckResult(False, None, "no answer found", details={"method": "none"})
        answer, formatted = extracted.answer, extracted.explicit
        details: dict[str, Any] = {"extraction": extracted.method}
        if len(extracted.all_boxed) > 1:
            details["boxed_answers"] = list(extracted.all_boxed)

        def result(correct: bool, reason: str, method: str) -> CheckResult:
            details["method"] = method
            return CheckResult(correct, answer, reason, formatted, details)

        if len(answer) > MAX_ANSWER_CHARS:
            return result(False, f"answer too long ({len(answer)} > {MAX_ANSWER_CHARS} chars)", "none")
        references = _references(task)
        if not references:
            return result(False, "task has no reference answer", "none")

        fast, fast_method = (None, "none") if self.scorer_only else _fast_compare(answer, references)
        if fast:
            return result(True, "equal" if fast_method == "exact" else "numerically equal",
                          fast_method)
        if self.scorer is not None:
            score = self._score(answer, task, details)
            if score >= 1.0:
                return result(True, f"scorer gave {score:g}", "scorer")
            if self.scorer_only:
                return result(False, f"scorer gave {score:g}", "scorer")
        if fast is False:
            return result(False, "not equal to the reference", fast_method)
        if _is_text_answer(task):
            return result(False, "not the reference text", "exact")
        return self._math_verify(answer, references, result)

    def _score(self, answer: str, task: Task, details: dict[str, Any]) -> float:
        assert self.scorer is not None
        try:
            score = float(self.scorer(answer, task))
        except Exception as exc:
            details["scorer_error"] = f"{type(exc).__name__}: {exc}"
            score = 0.0
        details["score"] = score
        return score

    def _math_verify(self, answer: str, references: Sequence[str],
                     result: Callable[[bool, str, str], CheckResult]) -> CheckResult:
        inner_timeout = max(1, int(self.timeout / 3))  # math-verify's own alarm, under ours
        try:
            correct, why = _shared_worker().call(answer, tuple(references), inner_timeout,
                                                 timeout=self.timeout)
        except WorkerTimeoutError:
            return result(False, f"math-verify timed out after {self.timeout:g}s", "math_verify")
        except WorkerCrashedError as exc:
            return result(False, f"math-verify failed: {exc}", "math_verify")
        return result(bool(correct), str(why), "math_verify")


def _references(task: Task) -> list[str]:
    accepted = task.metadata.get("accepted_answers") if task.metadata else None
    candidates = list(accepted) if accepted else [task.answer]
    return [c for c in candidates if isinstance(c, str) and c.strip()]


def _is_text_answer(task: Task) -> bool:
    return bool(task.metadata) and task.metadata.get("answer_type") in _TEXT_ANSWER_TYPES


# -- stage 1: the in-process fast path ---------------------------------------------------------------
_TEXT_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,!;: ]|~")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_SPACES_RE = re.compile(r"\s+")
_ASSIGNMENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}\s*=\s*")
_FRAC_RE = re.compile(r"^([-+]?)\\[dt]?frac\{([-+]?[0-9]+)\}\{([0-9]+)\}$")
_RATIO_RE = re.compile(r"^([-+]?[0-9]+)\s*/\s*([0-9]+)$")
_NUMBER_RE = re.compile(r"^[-+]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$|^[-+]?\.[0-9]+$")
_WORD_RE = re.compile(r"^[a-z]{2,}[.,:;!?]?$")
_NOT_UNITS = frozenset({"not", "no", "except", "minus", "plus", "times", "over", "and", "or", "than",
                        "to", "from", "between", "per", "divided", "squared", "cubed", "root"})


@lru_cache(maxsize=8192)
def _normalize(text: str) -> str:
    """A canonical spelling for string and number comparison (cached: references repeat)."""
    text = text.replace("\u2212", "-").replace("\\%", "%").replace("\\$", "").replace("$", "")
    text = _TEXT_WRAPPER_RE.sub(r"\1", text)
    text = _SPACING_RE.sub(" ", text)
    text = _DEGREE_RE.sub("", text)
    # Lower case like math-verify, which also reads ``x+Y`` as ``x+y``.
    return _SPACES_RE.sub(" ", text).strip().rstrip(".").strip().lower()


@lru_cache(maxsize=8192)
def _number_values(normalized: str) -> frozenset[Fraction] | None:
    """The exact value(s) of a one-number answer (two for a percentage), else ``None``."""
    text = _ASSIGNMENT_RE.sub("", normalized, count=1)
    if len(text) > 4 * _MAX_NUMBER_CHARS:
        return None
    for pattern in (_FRAC_RE, _RATIO_RE):
        match = pattern.match(text)
        if match:
            sign, numerator, denominator = ("",) + match.groups() if pattern is _RATIO_RE \
                else match.groups()
            if int(denominator) == 0:
                return None
            value = Fraction(int(numerator), int(denominator))
            return frozenset({-value if sign == "-" else value})
    number: str | None = None
    for token in text.replace("%", " % ").split():
        if token == "%":
            if number is None:
                return None
            number += "%"
        elif _NUMBER_RE.match(token) and number is None and len(token) <= _MAX_NUMBER_CHARS:
            number = token
        elif not _WORD_RE.match(token) or token.rstrip(".,:;!?") in _NOT_UNITS:
            return None
    if number is None or number.count("%") > 1:
        return None
    percent = number.endswith("%")
    value = Fraction(number.rstrip("%").replace(",", ""))
    return frozenset({value, value / 100}) if percent else frozenset({value})


def _fast_compare(answer: str, references: Sequence[str]) -> tuple[bool | None, str]:
    """``(True, method)`` if equal, ``(False, "numeric")`` if surely not, else ``(None, ...)``."""
    normalized = _normalize(answer)
    key = normalized.replace(" ", "")
    answer_values = _number_values(normalized)
    undecided = False
    for reference in references:
        normalized_reference = _normalize(reference)
        if key == normalized_reference.replace(" ", ""):
            return True, "exact"
        reference_values = _number_values(normalized_reference)
        if reference_values is None:
            undecided = True
            continue
        if answer_values is None:
            if any(c.isdigit() for c in normalized) or "\\" in normalized:
                undecided = True
            continue
        if answer_values & reference_values:
            return True, "numeric"
        if any(_close(a, r) for a in answer_values for r in reference_values):
            undecided = True
    return (None, "none") if undecided else (False, "numeric")


def _close(a: Fraction, b: Fraction) -> bool:
    """Near-equal non-integers, which math-verify's rounding may still call equal."""
    if a.denominator == 1 and b.denominator == 1:
        return False
    return abs(a - b) <= _NUMERIC_TOLERANCE * max(1, abs(b))


# -- stage 3: math-verify in the worker ----------------------------------------------------------
_worker: WorkerProcess | None = None
_worker_lock = threading.Lock()


def _shared_worker() -> WorkerProcess:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = WorkerProcess("rsim_env.checkers.math:_verify_in_worker",
                                    preload=("math_verify",))
        return _worker


def _verify_in_worker(answer: str, references: tuple[str, ...], timeout_s: int) -> tuple[bool, str]:
    """Runs in the worker: math-verify's ``parse`` on each side, then ``verify`` against each ref."""
    from math_verify import verify

    predicted = _parse(answer, timeout_s)
    if not predicted:
        return False, "math-verify could not parse the answer"
    parsed_any = False
    for reference in references:
        gold = _parse(reference, timeout_s)
        if not gold:
            continue
        parsed_any = True
        if verify(gold, predicted, timeout_seconds=timeout_s):
            return True, f"equivalent to {reference!r} (math-verify)"
    if not parsed_any:
        return False, "math-verify could not parse the reference"
    return False, "not equivalent (math-verify)"


@lru_cache(maxsize=4096)
def _parse(text: str, timeout_s: int) -> list[Any]:
    from math_verify import parse

    latex = plain_math_to_latex(text)
    if "$" not in latex and "\\(" not in latex and "\\[" not in latex:
        latex = f"${latex}$"
    return parse(latex, parsing_timeout=timeout_s)


_BINOMIAL_RE = re.compile(r"(?<![A-Za-z0-9_])C\(")


def plain_math_to_latex(text: str) -> str:
    """Rewrite the plain-text math that math-verify misreads as LaTeX.

    math-verify already reads ``sqrt(x)``, ``a^(b)``, ``±``, ``≥`` and ``×`` in plain text, but it
    reads ``2**10`` as ``2``, ``3·4`` as ``3`` and keeps ``C(10, 5)`` as an unknown function; these
    become ``2^10``, ``3 \\cdot 4`` and ``\\binom{10}{5}``. Text with a backslash is LaTeX
    already and is left alone.
    """
    if "\\" in text:
        return text
    text = text.replace("**", "^").replace("·", "\\cdot ")
    out: list[str] = []
    position = 0
    for match in _BINOMIAL_RE.finditer(text):
        if match.start() < position:
            continue
        close = _matching_paren(text, match.end() - 1)
        parts = _split_top_level(text[match.end():close]) if close is not None else []
        if len(parts) != 2:
            continue
        out.append(text[position:match.start()])
        out.append(f"\\binom{{{plain_math_to_latex(parts[0].strip())}}}"
                   f"{{{plain_math_to_latex(parts[1].strip())}}}")
        position = close + 1
    out.append(text[position:])
    return "".join(out)


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return parts + [text[start:]]


def _matching_paren(text: str, open_index: int) -> int | None:
    depth = 0
    for index in range(open_index, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return None
