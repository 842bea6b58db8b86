"""Shared fixtures: small, seeded environments and a scripted reasoner."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """Under CI, a test marked ``gpu`` without CUDA is skipped; everything else runs."""
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def play_episode(env, planner, reasoner) -> dict:
    """Step an AEC env to the end with ``planner(obs) -> int`` and ``reasoner(text) -> str``."""
    final_info: dict = {}
    for agent in env.agent_iter():
        obs, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            final_info = info
            env.step(None)
            continue
        env.step(planner(obs) if agent == "planner" else reasoner(obs["text"]))
    return final_info


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
