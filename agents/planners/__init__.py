"""Planners: policies that pick the next reasoning strategy for a batch of planner observations.

* :mod:`agents.planners.base`: :class:`PlannerOutput`, the :class:`Planner` protocol, :func:`load_planner`.
* :mod:`agents.planners.baselines`: random, fixed, none (plain chain of thought), round-robin, UCB, and
  :func:`make_planner`, the factory behind ``rsim eval --planner``.
* :mod:`agents.planners.llm`: :class:`LLMPlanner`, a causal LM reading the numbered strategy list.
* :mod:`agents.planners.sb3`: :class:`SB3Planner`, a Stable-Baselines3 model trained on ``PlannerEnv``.
* :mod:`agents.planners.mlp`: :class:`MLPPlanner`, hashed words -> MLP, for fast experiments.

Names are imported lazily so that the baselines work without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Planner": "agents.planners.base",
    "PlannerOutput": "agents.planners.base",
    "PlannerLoadError": "agents.planners.base",
    "PlannerObservationError": "agents.planners.base",
    "StrategyMismatchError": "agents.planners.base",
    "load_planner": "agents.planners.base",
    "FixedPlanner": "agents.planners.baselines",
    "NoStrategyPlanner": "agents.planners.baselines",
    "RandomPlanner": "agents.planners.baselines",
    "RoundRobinPlanner": "agents.planners.baselines",
    "UCBPlanner": "agents.planners.baselines",
    "UnknownPlannerError": "agents.planners.baselines",
    "make_planner": "agents.planners.baselines",
    "LLMPlanner": "agents.planners.llm",
    "SB3Planner": "agents.planners.sb3",
    "MLPPlanner": "agents.planners.mlp",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
