"""Registered environment ids (``rsim/<Name>-v<N>``), Gymnasium-style.

Each id binds a suite and default options to the rSIM environment; ``make(id, **overrides)`` builds
it. The built-in ids are registered in one place, :mod:`rsim_env.envs`, each with a module whose
docstring documents it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pettingzoo import AECEnv

from rsim_env.env.core import env as _wrapped_env
from rsim_env.env.core import raw_env as _raw_env
from rsim_env.errors import ConfigError, UnknownEnvError

_ID = re.compile(r"^[A-Za-z0-9_]+/[A-Za-z0-9_]+-v\d+$")


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment: its id, suite and default options."""

    id: str
    suite: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, EnvSpec] = {}


def register(id: str, *, suite: str, description: str = "", **kwargs: Any) -> EnvSpec:
    """Register ``id`` (``"namespace/Name-vN"``) for ``suite`` with default env options ``kwargs``."""
    if not _ID.match(id):
        raise ConfigError(f"Environment id {id!r} must look like 'rsim/Name-v0'.")
    spec = EnvSpec(id, suite, dict(kwargs), description)
    _REGISTRY[id] = spec
    return spec


def spec(id: str) -> EnvSpec:
    """The :class:`EnvSpec` registered as ``id``."""
    if id not in _REGISTRY:
        close = [k for k in _REGISTRY if k.lower().split("-v")[0] == id.lower().split("-v")[0]]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownEnvError(f"Unknown environment id {id!r}.{hint} Registered: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[id]


def list_envs() -> list[str]:
    """All registered environment ids, sorted."""
    return sorted(_REGISTRY)


def make(id: str, *, wrapped: bool = True, **overrides: Any) -> AECEnv:
    """Build the environment registered as ``id``; ``overrides`` replace its default options."""
    s = spec(id)
    kwargs = {**s.kwargs, **overrides}
    return (_wrapped_env if wrapped else _raw_env)(s.suite, **kwargs)


def env_fns(id: str) -> tuple[Callable[..., AECEnv], Callable[..., AECEnv]]:
    """``(env, raw_env)`` constructors for ``id``, as a PettingZoo environment module exposes them."""
    def env(**kwargs: Any) -> AECEnv:
        return make(id, **kwargs)

    def raw_env(**kwargs: Any) -> AECEnv:
        return make(id, wrapped=False, **kwargs)

    env.__doc__ = raw_env.__doc__ = f"Build {id} (see this module's docstring); keywords override its defaults."
    return env, raw_env
