"""rsim agents: LLM models and backends (and, as they land, planners, rollouts and trainers).

Names are imported lazily, so ``import agents`` stays cheap and works without torch installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "resolve_model": "agents.models",
    "ModelUnavailableError": "agents.models",
    "EMBEDDED_MODEL": "agents.models",
    "TINY_RANDOM": "agents.models",
    "GenerationConfig": "agents.backends.base",
    "StepOutput": "agents.backends.base",
    "ReasonerBackend": "agents.backends.base",
    "TransformersBackend": "agents.backends.transformers_backend",
    "VLLMBackend": "agents.backends.vllm_backend",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
