"""Spaces for text actions and observations."""

from __future__ import annotations

import string
from typing import Any

from gymnasium.spaces import Text

PRINTABLE = frozenset(string.ascii_letters + string.digits + string.punctuation + " \n")


class UnicodeText(Text):
    """A :class:`gymnasium.spaces.Text` that holds any Unicode string of bounded length.

    LLMs write arbitrary Unicode, so membership checks only the type and the length; ``sample()``
    draws from printable ASCII (``charset``) so random agents produce readable text.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, UnicodeText) and self.min_length == other.min_length
                and self.max_length == other.max_length)
