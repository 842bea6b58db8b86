"""A small neural planner for text observations: hashed words -> MLP -> masked softmax.

The planner for fast experiments and teaching, above all on the simulated suite, where it learns the
optimal strategy policy in about a minute of CPU. It reads the same text an LLM planner reads,
through :class:`rsim_env.wrappers.HashedWordEncoder`, so nothing about the task is hard-coded. A value
head on the shared hidden layer serves PPO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from agents.planners.base import (PlannerLoadError, PlannerOutput, check_strategies, count_steps, legal_masks,
                                  masked_entropy, read_planner_file, write_directory_atomic)
from rsim_env.atomic import write_json_atomic
from rsim_env.strategies import StrategySet
from rsim_env.wrappers import HashedWordEncoder

KIND = "mlp"
FEATURE_CACHE_SIZE = 200_000
"""Encoded observation texts kept in memory (a few hundred MB at most); the cache empties when full."""


class MLPPlanner(nn.Module):
    """A masked categorical policy over strategies, with a value head.

    Args:
        strategies: the strategy set (the action space).
        max_steps: the env's step cap, for the encoder's step-fraction feature.
        hidden: width of the two hidden layers.
        dim: hash buckets per text block of the encoder.
        seed: initialises the weights and the sampling generator.
    """

    def __init__(self, strategies: StrategySet, *, max_steps: int = 10, hidden: int = 64, dim: int = 256,
                 seed: int = 0) -> None:
        super().__init__()
        self.strategies = strategies
        self.max_steps = max_steps
        self.hidden, self.dim = hidden, dim
        self.encoder = HashedWordEncoder(dim=dim)
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Linear(self.encoder.size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.policy_head = nn.Linear(hidden, len(strategies))
        self.value_head = nn.Linear(hidden, 1)
        with torch.no_grad():  # a near-uniform initial policy, as in CleanRL's small-gain output layer
            self.policy_head.weight.mul_(0.01)
            self.policy_head.bias.zero_()
        self._generator = torch.Generator().manual_seed(seed)
        self._features: dict[str, np.ndarray] = {}

    # -- features and distributions ----------------------------------------------------------------
    def features(self, observations: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Encoded observations [B, encoder.size]; encodings are cached by text, since training reads
        each observation several times (epochs, minibatches, value targets)."""
        rows = []
        for o in observations:
            row = self._features.get(o["text"])
            if row is None:
                if len(self._features) >= FEATURE_CACHE_SIZE:
                    self._features.clear()
                row = self._features[o["text"]] = self.encoder(o["text"], count_steps(o["text"]), self.max_steps)
            rows.append(row)
        return torch.from_numpy(np.stack(rows))

    def _log_probs(self, observations: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked log-probabilities [B, n] and the hidden layer [B, hidden]."""
        masks = torch.from_numpy(legal_masks(observations, len(self.strategies)))
        hidden = self.body(self.features(observations))
        logits = self.policy_head(hidden).masked_fill(~masks, float("-inf"))
        return torch.log_softmax(logits, dim=-1), hidden

    # -- the Planner interface ------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._generator.manual_seed(seed)

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """Learning happens in the trainer's gradient steps, not here."""

    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        with torch.inference_mode():
            log_probs, _ = self._log_probs(observations)
            if greedy:
                actions = log_probs.argmax(-1)
            else:
                actions = torch.multinomial(log_probs.exp(), 1, generator=self._generator).squeeze(-1)
            chosen = log_probs.gather(-1, actions[:, None]).squeeze(-1)
            return PlannerOutput(actions=actions.numpy().astype(np.int64), logprobs=chosen.numpy().astype(float),
                                 entropy=masked_entropy(log_probs).numpy().astype(float))

    def logprobs_and_entropy(self, observations: Sequence[Mapping[str, Any]],
                             actions: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable ``log pi(action | obs)`` and the policy's entropy, per observation."""
        log_probs, _ = self._log_probs(observations)
        actions = torch.as_tensor(actions, dtype=torch.long)
        return log_probs.gather(-1, actions[:, None]).squeeze(-1), masked_entropy(log_probs)

    def value(self, observations: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """The value head's estimate per observation (for PPO)."""
        return self.value_head(self.body(self.features(observations))).squeeze(-1)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- saving ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``planner.json`` (kind, strategy set, sizes) and ``weights.pt``, as one atomic directory."""
        meta = {"kind": KIND, "strategies": self.strategies.to_dict(), "fingerprint": self.strategies.fingerprint(),
                "max_steps": self.max_steps, "hidden": self.hidden, "dim": self.dim}

        def build(tmp: Path) -> None:
            torch.save(self.state_dict(), tmp / "weights.pt")
            write_json_atomic(tmp / "planner.json", meta)

        return write_directory_atomic(directory, build)

    @classmethod
    def load(cls, directory: str | Path, strategies: StrategySet | None = None) -> MLPPlanner:
        """Load a saved planner; refuse it if ``strategies`` differs from the set it was trained with.

        Raises:
            StrategyMismatchError: ``strategies`` differs from the planner's own set.
            PlannerLoadError: the directory holds no MLP planner.
        """
        meta = read_planner_file(directory)
        if meta["kind"] != KIND:
            raise PlannerLoadError(f"{str(directory)!r} holds a {meta['kind']!r} planner, not an MLP planner; "
                                   "load it with agents.planners.load_planner.")
        saved = check_strategies(StrategySet.from_dict(meta["strategies"]), strategies, directory)
        planner = cls(saved, max_steps=meta["max_steps"], hidden=meta["hidden"], dim=meta["dim"])
        planner.load_state_dict(torch.load(Path(directory) / "weights.pt", weights_only=True))
        return planner
