"""The task-suite registry: one place that maps suite names to factories."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from rsim_env.errors import ConfigError, UnknownSuiteError
from rsim_env.tasks.task import TaskSuite


@dataclass(frozen=True)
class SuiteSpec:
    """A registered suite: its name, a factory building it, and a one-line description."""

    name: str
    factory: Callable[..., TaskSuite]
    description: str
    kind: str


_SUITES: dict[str, SuiteSpec] = {}
_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], TaskSuite] = {}


def register_suite(
    name: str, factory: Callable[..., TaskSuite], *, description: str, kind: str = "math"
) -> None:
    """Register ``factory(**kwargs) -> TaskSuite`` under ``name`` (re-registering replaces)."""
    _SUITES[name] = SuiteSpec(name, factory, description, kind)
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


def list_suites() -> list[SuiteSpec]:
    """Every registered suite, sorted by name."""
    return [_SUITES[n] for n in sorted(_SUITES)]


def make_suite(name: str, **kwargs: Any) -> TaskSuite:
    """Build (or reuse, for the same arguments) the suite registered as ``name``."""
    if name not in _SUITES:
        known = ", ".join(sorted(_SUITES))
        raise UnknownSuiteError(f"Unknown suite {name!r}. Registered suites: {known}. "
                                "Register your own with rsim_env.register_suite().")
    _check_arguments(_SUITES[name], kwargs)
    key = (name, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:  # unhashable arguments: build fresh, don't cache
        return _SUITES[name].factory(**kwargs)
    if key not in _CACHE:
        _CACHE[key] = _SUITES[name].factory(**kwargs)
    return _CACHE[key]


def _check_arguments(spec: SuiteSpec, kwargs: dict[str, Any]) -> None:
    """Refuse keywords the suite's factory does not take, naming the ones it does."""
    try:
        params = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        accepted = ", ".join(params) or "none"
        raise ConfigError(f"Suite {spec.name!r} does not take {', '.join(map(repr, unknown))} "
                          f"(its suite_kwargs are: {accepted}).")
