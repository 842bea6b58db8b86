"""Reasoning strategies: the planner's action set.

A :class:`Strategy` is a name, an index (its position in the set) and the prompt text that is
injected into the chain of thought before the reasoner's next step. A :class:`StrategySet` is plain
data, loadable from YAML or JSON, so users can add, remove or reword strategies; the planner's
``Discrete(n)`` action space follows the set's size. Exactly one strategy *terminates*: choosing it
makes the reasoner's next step the final answer, after which the episode ends.

The default set is the paper's nine strategies (rSIM, Chen, Li, Niu, ACL 2026, §3), in this index
order: self_reflection, decomposition, deep_thinking, verification, summarization, prioritization,
sub_planning, continuation, termination. Their prompts are in ``rsim_env/data/strategies.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from rsim_env.atomic import write_text_atomic
from rsim_env.errors import StrategySetError, UnknownStrategyError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Strategy:
    """One reasoning strategy.

    Attributes:
        name: a lowercase identifier (``"verification"``), unique within its set.
        prompt: the text injected into the chain of thought before the reasoner's step.
        index: the strategy's position in its set, i.e. the planner's action.
        terminates: whether choosing it makes the next step the final answer and ends the episode.
    """

    name: str
    prompt: str
    index: int
    terminates: bool = False


class StrategySet:
    """An ordered, validated set of strategies.

    Args:
        strategies: mappings or :class:`Strategy` objects with ``name``, ``prompt`` and optionally
            ``terminates``; their order defines the action indices.

    Raises:
        StrategySetError: on duplicate or malformed names, empty prompts, fewer than two
            strategies, or not exactly one terminating strategy.
    """

    def __init__(self, strategies: Sequence[Mapping[str, Any] | Strategy]) -> None:
        items: list[Strategy] = []
        for i, raw in enumerate(strategies):
            if isinstance(raw, Strategy):
                raw = {"name": raw.name, "prompt": raw.prompt, "terminates": raw.terminates}
            if not isinstance(raw, Mapping):
                raise StrategySetError(f"Strategy #{i} must be a mapping with 'name' and 'prompt', got {type(raw).__name__}.")
            unknown = set(raw) - {"name", "prompt", "terminates"}
            if unknown:
                raise StrategySetError(f"Strategy #{i} has unknown fields {sorted(unknown)}; allowed: name, prompt, terminates.")
            name, prompt = raw.get("name"), raw.get("prompt")
            if not isinstance(name, str) or not _NAME.match(name):
                raise StrategySetError(f"Strategy #{i} has an invalid name {name!r}: use a lowercase identifier like 'self_reflection'.")
            if not isinstance(prompt, str) or not prompt.strip():
                raise StrategySetError(f"Strategy {name!r} has an empty prompt; every strategy needs text to inject.")
            items.append(Strategy(name, prompt.strip(), i, bool(raw.get("terminates", False))))
        if len(items) < 2:
            raise StrategySetError(f"A strategy set needs at least two strategies, got {len(items)}.")
        names = [s.name for s in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise StrategySetError(f"Strategy names must be unique; repeated: {duplicates}.")
        terminating = [s.name for s in items if s.terminates]
        if len(terminating) != 1:
            raise StrategySetError(
                f"Exactly one strategy must have 'terminates: true', found {len(terminating)} ({terminating})."
            )
        self._strategies: tuple[Strategy, ...] = tuple(items)
        self._by_name = {s.name: s for s in items}
        self.termination_index: int = next(s.index for s in items if s.terminates)

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def default(cls) -> StrategySet:
        """The paper's nine strategies."""
        return _default_set()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> StrategySet:
        """From ``{"strategies": [...]}`` or a bare list of strategy mappings."""
        if isinstance(data, Mapping):
            if "strategies" not in data:
                raise StrategySetError("A strategy file must have a top-level 'strategies' list.")
            data = data["strategies"]
        if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
            raise StrategySetError("'strategies' must be a list of {name, prompt, terminates} mappings.")
        return cls(data)

    @classmethod
    def load(cls, path: str | Path) -> StrategySet:
        """From a ``.yaml``/``.yml`` or ``.json`` file."""
        path = Path(path)
        if not path.is_file():
            raise StrategySetError(f"Strategy file {str(path)!r} does not exist.")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise StrategySetError(f"Could not parse strategy file {str(path)!r}: {err}") from err
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML-serialisable form accepted by :meth:`from_dict`."""
        return {"strategies": [
            {"name": s.name, "prompt": s.prompt, **({"terminates": True} if s.terminates else {})}
            for s in self._strategies
        ]}

    def save(self, path: str | Path) -> None:
        """Write the set as YAML or JSON (by suffix)."""
        path = Path(path)
        data = self.to_dict()
        text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
        write_text_atomic(path, text)

    # -- lookup -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._strategies)

    def __iter__(self) -> Iterator[Strategy]:
        return iter(self._strategies)

    def __getitem__(self, key: int | str) -> Strategy:
        if isinstance(key, str):
            return self._by_name[self._checked_name(key)]
        return self._strategies[key]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def index(self, name: str) -> int:
        """The action index of strategy ``name``."""
        return self._by_name[self._checked_name(name)].index

    def _checked_name(self, name: str) -> str:
        if name not in self._by_name:
            raise UnknownStrategyError(f"Unknown strategy {name!r}. This set has: {', '.join(self.names)}.")
        return name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._strategies)

    def fingerprint(self) -> str:
        """A short hash of names, prompts and order; equal sets have equal fingerprints."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StrategySet) and self._strategies == other._strategies

    def __hash__(self) -> int:
        return hash(self._strategies)

    def __repr__(self) -> str:
        return f"StrategySet({list(self.names)})"


@lru_cache(maxsize=1)
def _default_set() -> StrategySet:
    text = resources.files("rsim_env").joinpath("data/strategies.yaml").read_text(encoding="utf-8")
    return StrategySet.from_dict(yaml.safe_load(text))
