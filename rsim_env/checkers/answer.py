r"""Find the final answer in a reasoner's response.

:func:`extract_answer` tries these forms in order and returns the first that is present:

1. ``boxed``: the content of the **last** ``\boxed{...}`` or ``\fbox{...}`` (braces balanced; the
   escaped braces ``\{`` and ``\}`` do not count). A chain of thought that boxes several answers is
   judged by its last one, the reasoner's latest revision (self-reflection may correct an earlier
   box); hedging by boxing many candidates gains nothing. Every boxed content, in order, is kept in
   :attr:`ExtractedAnswer.all_boxed`, so a checker or a log can see that the answers disagreed.
   Write multi-part answers inside one box (``\boxed{2, 3}``). A box whose braces never close
   (e.g. a truncated response) is ignored.
2. ``answer_is``: the last statement "The answer is ...", "The final answer is ...",
   "Answer: ..." or "Final answer = ..." (case-insensitive). The answer runs to the end of the line
   and stops at the first sentence end (a period followed by a space), so "The answer is 12. I hope
   it is correct." gives ``12``; if the line is empty after the colon, the next non-empty line is it.
3. ``hash``: the last GSM8K-style ``#### ...`` line.
4. ``last_number``: the last number in the text (integers, decimals, ``1,234``-style thousands,
   simple fractions ``3/4`` and a trailing ``%``), a fallback for responses that never state their
   answer. It is *not* an explicit final answer.

The answer string is trimmed of whitespace, surrounding ``$``/``\(...\)``/``\[...\]``, Markdown
emphasis and a trailing period; it is otherwise raw (normalizing is the checker's job).

:func:`has_final_answer` says whether the response *states* a final answer (forms 1-3), which the
env's ``end_on_answer`` option uses to end an episode early.

Cost: every step is a linear scan by ``str.rfind`` or a regular expression without nested
quantifiers (no catastrophic backtracking), plus one Python loop over the brace characters after
the first box. Only the last :data:`MAX_SCAN_CHARS` characters are scanned, because final answers
live at the end and this bounds the work on adversarial input (100 kB strings, 10k nested braces).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["ExtractedAnswer", "extract_answer", "has_final_answer", "MAX_SCAN_CHARS"]

MAX_SCAN_CHARS = 20_000
"""Only this many characters at the end of a response are searched for the answer."""

ExtractionMethod = Literal["boxed", "answer_is", "hash", "last_number"]


@dataclass(frozen=True)
class ExtractedAnswer:
    """A final answer found in a response.

    Attributes:
        answer: the answer text, trimmed (see the module docstring).
        method: which form it came from: ``"boxed"``, ``"answer_is"``, ``"hash"`` or
            ``"last_number"``.
        explicit: whether the response stated it as its final answer (every method but
            ``"last_number"``); the format reward and ``end_on_answer`` use this.
        all_boxed: the contents of every closed, non-empty box in the scanned text that is not
            nested in another box, in order (empty unless ``method == "boxed"``).
    """

    answer: str
    method: ExtractionMethod
    explicit: bool
    all_boxed: tuple[str, ...] = ()


_BOX_OPEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A brace token: an escaped brace or an escaped backslash (skipped), or a real brace.
_BRACE_RE = re.compile(r"\\[{}\\]|[{}]")
_ANSWER_IS_RE = re.compile(
    r"\b(?:final\s+)?answer\s*(?:is\s*:?|:|=)[ \t]*(?:\*\*)?[ \t]*(?::[ \t]*)?", re.IGNORECASE)
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
_NUMBER_RE = re.compile(
    r"(?<![\w.])-?[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?(?:/[0-9]+)?%?")
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)")
_DELIMITERS = (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]"))
_EDGE_CHARS = " \t\r\n*`"  # whitespace and Markdown emphasis/code marks


def extract_answer(text: str) -> ExtractedAnswer | None:
    """The response's final answer (see the module docstring for the order), or ``None``."""
    if not isinstance(text, str) or not text:
        return None
    tail = text[-MAX_SCAN_CHARS:]
    last_box, boxes = _boxed_contents(tail)
    if last_box:
        return ExtractedAnswer(last_box, "boxed", True, tuple(boxes))
    stated = _answer_statement(tail)
    if stated:
        return ExtractedAnswer(stated, "answer_is", True)
    hashed = _hash_answer(tail)
    if hashed:
        return ExtractedAnswer(hashed, "hash", True)
    number = _last_match(_NUMBER_RE, tail)
    if number is not None:
        return ExtractedAnswer(number.group(), "last_number", False)
    return None


def has_final_answer(text: str) -> bool:
    """Whether ``text`` explicitly states a final answer (boxed, "the answer is", or ``####``)."""
    if not isinstance(text, str) or not text:
        return False
    tail = text[-MAX_SCAN_CHARS:]
    return bool(_boxed_contents(tail)[0] or _answer_statement(tail) or _hash_answer(tail))


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = deque(pattern.finditer(text), maxlen=1)  # consumes the matches at C speed
    return last[0] if last else None


def _boxed_contents(text: str) -> tuple[str, list[str]]:
    """The last closed, non-empty box's content, and every top-level box's content, in order.

    Only boxes that are not inside another box are listed, so the list's total size stays within
    the scanned text even for ``\\boxed{\\boxed{...}}`` nested thousands deep.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return "", []
    opens = [m.end() - 1 for m in _BOX_OPEN_RE.finditer(text)]  # positions of the "{"
    if not opens:
        return "", []
    closing: dict[int, int] = {}
    stack: list[int] = []
    for token in _BRACE_RE.finditer(text, opens[0]):
        brace = token.group()
        if brace == "{":
            stack.append(token.start())
        elif brace == "}" and stack:
            closing[stack.pop()] = token.start()
    last = ""
    for start in reversed(opens):
        if start in closing:
            last = text[start + 1:closing[start]].strip()
            if last:
                break
    top_level: list[str] = []
    covered_until = -1
    for start in opens:
        if start in closing and start > covered_until:
            content = text[start + 1:closing[start]].strip()
            covered_until = closing[start]
            if content:
                top_level.append(content)
    return last, top_level


def _answer_statement(text: str) -> str | None:
    if "nswer" not in text and "NSWER" not in text:  # cheap pre-check before the regex
        return None
    match = _last_match(_ANSWER_IS_RE, text)
    if match is None:
        return None
    rest = text[match.end():]
    line, _, after = rest.partition("\n")
    if not line.strip():  # "Answer:\n\n42"
        line = next((ln for ln in after.split("\n", 20)[:20] if ln.strip()), "")
    end = _SENTENCE_END_RE.search(line)
    if end is not None:
        line = line[:end.start()]
    return _trim(line) or None


def _hash_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    match = _last_match(_HASH_RE, text)
    return _trim(match.group(1)) if match is not None else None


def _trim(answer: str) -> str:
    """Strip whitespace, Markdown emphasis, math delimiters and a trailing period."""
    answer = answer.strip(_EDGE_CHARS).rstrip(".,;").strip(_EDGE_CHARS)
    changed = True
    while changed and answer:
        changed = False
        for left, right in _DELIMITERS:
            if len(answer) > len(left) + len(right) and answer.startswith(left) \
                    and answer.endswith(right):
                answer = answer[len(left):-len(right)].strip(_EDGE_CHARS).rstrip(".,;")
                answer = answer.strip(_EDGE_CHARS)
                changed = True
                break
    return answer
