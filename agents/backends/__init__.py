"""LLM backends that write reasoner steps for batches of episodes (see :mod:`agents.backends.base`).

``TransformersBackend`` (default, CPU and CUDA) and ``VLLMBackend`` (GPU, the ``vllm`` extra) share one
interface; they are imported lazily so that ``import agents.backends`` needs neither torch nor vLLM.
"""

from __future__ import annotations

import importlib
from typing import Any

from agents.backends.base import (
    DEFAULT_ANSWER_PATTERNS,
    DEFAULT_DELIMITER,
    ContextLengthError,
    GenerationConfig,
    ReasonerBackend,
    StepOutput,
    StopReason,
    has_final_answer,
)

_LAZY = {
    "TransformersBackend": "agents.backends.transformers_backend",
    "VLLMBackend": "agents.backends.vllm_backend",
}

__all__ = [
    "DEFAULT_ANSWER_PATTERNS", "DEFAULT_DELIMITER", "ContextLengthError", "GenerationConfig", "ReasonerBackend",
    "StepOutput", "StopReason", "TransformersBackend", "VLLMBackend", "has_final_answer",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
