"""Stable-Baselines3 models as planners: train on ``PlannerEnv``, then drive the two-agent env.

A model trained on :class:`rsim_env.wrappers.PlannerEnv` reads encoded observations (hashed words or
the env's UTF-8 bytes). :class:`SB3Planner` encodes the AEC env's planner observations the same way
and turns the model's policy into a :class:`~agents.planners.base.PlannerOutput`, so it can run in
rollouts, ``rsim eval`` and next to LLM planners.

For policy-gradient models (``PPO``, ``A2C``, sb3-contrib's ``MaskablePPO``) the action distribution
comes from ``model.policy.get_distribution`` (with the action masks for ``MaskablePPO``); the planner
masks it again, then samples with its own seeded generator or takes the argmax. Sampling here rather
than through ``model.predict`` gives true log-probabilities, reproducible runs, and legal actions even
for models trained without masks. The argmax equals ``MaskablePPO.predict(..., deterministic=True)``.
Value-based models (``DQN``) act greedily on their masked Q-values (log-probability and entropy 0).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

import rsim_env
from agents.planners.base import (PlannerLoadError, PlannerObservationError, PlannerOutput, check_strategies,
                                  count_steps, legal_masks, masked_entropy, read_planner_file, write_directory_atomic)
from rsim_env.atomic import write_json_atomic
from rsim_env.errors import ConfigError
from rsim_env.strategies import StrategySet
from rsim_env.wrappers import HashedWordEncoder

KIND = "sb3"
_ALGORITHM_MODULES = ("stable_baselines3", "sb3_contrib")
_MODEL_FILE = "model.zip"


class SB3Planner:
    """A trained Stable-Baselines3 model as a planner.

    Args:
        model: a trained SB3 / sb3-contrib model whose action space is ``Discrete(len(strategies))``.
        strategies: the strategy set the model was trained with.
        encoder: how ``PlannerEnv`` encoded observations during training: ``"words"`` (a default
            :class:`HashedWordEncoder`), a :class:`HashedWordEncoder` with your settings, or ``"bytes"``.
        max_steps: the training env's step cap; the word encoder's last feature is ``step / max_steps``,
            so it must match training (not needed for ``"bytes"``).
        seed: seeds the sampling generator.

    Raises:
        ConfigError: the model's action or observation space does not fit the strategies and encoder,
            ``max_steps`` is missing for the word encoder, or the model has neither a policy distribution
            nor Q-values.
    """

    def __init__(self, model: Any, strategies: StrategySet, *,
                 encoder: HashedWordEncoder | Literal["words", "bytes"] = "words", max_steps: int | None = None,
                 seed: int = 0) -> None:
        n = getattr(model.action_space, "n", None)
        if n != len(strategies):
            raise ConfigError(f"The model's action space is {model.action_space}, but the strategy set has "
                              f"{len(strategies)} strategies; use the set the model was trained with.")
        if encoder == "words":
            encoder = HashedWordEncoder()
        if not (encoder == "bytes" or isinstance(encoder, HashedWordEncoder)):
            raise ConfigError(f"encoder must be 'words', 'bytes' or a HashedWordEncoder, got {encoder!r}.")
        if isinstance(encoder, HashedWordEncoder):
            if max_steps is None:
                raise ConfigError("The word encoder's last feature is step / max_steps: pass max_steps=<the step cap "
                                  "of the env the model was trained on> (PlannerEnv(...).env.config.max_steps).")
            if model.observation_space.shape != (encoder.size,):
                raise ConfigError(f"The model reads observations of shape {model.observation_space.shape}, but the "
                                  f"encoder makes ({encoder.size},); pass the encoder used in training "
                                  "(HashedWordEncoder(dim=...) or 'bytes').")
        self.model = model
        self.strategies = strategies
        self.encoder = encoder
        self.max_steps = max_steps
        self._seed = seed
        self._generator = torch.Generator().manual_seed(seed)
        self._distribution = hasattr(model.policy, "get_distribution")
        self._takes_masks = self._distribution and "action_masks" in inspect.signature(
            model.policy.get_distribution).parameters
        if not self._distribution and not hasattr(model, "q_net"):
            raise ConfigError(f"{type(model).__name__} has neither policy.get_distribution (PPO, A2C, MaskablePPO) "
                              "nor q_net (DQN); SB3Planner cannot read its preferences.")

    def encode(self, observations: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's input for a batch of planner observations, as ``PlannerEnv`` would give it."""
        if isinstance(self.encoder, HashedWordEncoder):
            rows = [self.encoder(o["text"], count_steps(o["text"]), self.max_steps) for o in observations]
        else:
            if any("observation" not in o for o in observations):
                raise PlannerObservationError("The bytes encoder needs the env's 'observation' array in every "
                                              "observation; pass the env's planner observations unchanged.")
            rows = [np.asarray(o["observation"]) for o in observations]
        batch = np.stack(rows)
        if batch.shape[1:] != self.model.observation_space.shape:
            raise PlannerObservationError(
                f"Encoded observations have shape {batch.shape[1:]}, the model expects "
                f"{self.model.observation_space.shape}; build the env with the max_obs_bytes used in training.")
        return batch

    def _log_probs(self, batch: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """Masked log-probabilities ``[B, n]`` on the CPU."""
        policy = self.model.policy
        policy.set_training_mode(False)
        with torch.no_grad():
            obs, _ = policy.obs_to_tensor(batch)
            if self._takes_masks:
                dist = policy.get_distribution(obs, action_masks=masks)
            else:
                dist = policy.get_distribution(obs)
            logits = dist.distribution.logits.float().cpu()
        logits = logits.masked_fill(~torch.from_numpy(masks), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        masks = legal_masks(observations, len(self.strategies))
        batch = self.encode(observations)
        if not self._distribution:
            with torch.no_grad():
                q = self.model.q_net(self.model.policy.obs_to_tensor(batch)[0]).float().cpu()
            actions = q.masked_fill(~torch.from_numpy(masks), float("-inf")).argmax(-1).numpy().astype(np.int64)
            zeros = np.zeros(len(actions), float)
            return PlannerOutput(actions=actions, logprobs=zeros, entropy=zeros.copy())
        log_probs = self._log_probs(batch, masks)
        if greedy:
            actions = log_probs.argmax(-1)
        else:
            actions = torch.multinomial(log_probs.exp(), 1, generator=self._generator).squeeze(-1)
        entropy = masked_entropy(log_probs)
        return PlannerOutput(actions=actions.numpy().astype(np.int64),
                             logprobs=log_probs.gather(-1, actions[:, None]).squeeze(-1).numpy().astype(float),
                             entropy=entropy.numpy().astype(float))

    def reset(self, seed: int | None = None) -> None:
        """Reseed the sampling generator."""
        if seed is not None:
            self._generator.manual_seed(seed)

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """SB3 models learn in ``model.learn`` on ``PlannerEnv``, not here."""

    # -- saving --------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.zip`` (SB3's own format) and ``planner.json`` into ``directory`` at once."""
        cls = type(self.model)
        encoder = ({"type": "bytes"} if self.encoder == "bytes" else
                   {"type": "words", "dim": self.encoder.dim, "recent_lines": self.encoder.recent_lines})
        meta = {"kind": KIND, "algorithm": f"{cls.__module__}.{cls.__qualname__}", "encoder": encoder,
                "max_steps": self.max_steps, "strategies": self.strategies.to_dict(),
                "fingerprint": self.strategies.fingerprint(), "rsim_version": rsim_env.__version__}

        def build(tmp: Path) -> None:
            self.model.save(tmp / _MODEL_FILE)
            write_json_atomic(tmp / "planner.json", meta)

        return write_directory_atomic(directory, build)

    @classmethod
    def load(cls, directory: str | Path, strategies: StrategySet | None = None, *, device: str = "cpu",
             seed: int = 0) -> SB3Planner:
        """Load a planner written by :meth:`save`.

        Raises:
            StrategyMismatchError: ``strategies`` differs from the set the model was trained with.
            PlannerLoadError: not an SB3 planner, or its algorithm is not from stable_baselines3/sb3_contrib.
        """
        directory = Path(directory)
        meta = read_planner_file(directory)
        if meta["kind"] != KIND:
            raise PlannerLoadError(f"{str(directory)!r} holds a {meta['kind']!r} planner, not an SB3 planner; "
                                   "load it with agents.planners.load_planner.")
        saved = check_strategies(StrategySet.from_dict(meta["strategies"]), strategies, directory)
        module, _, name = meta["algorithm"].rpartition(".")
        # Only SB3's own packages: planner.json must not be able to import arbitrary code.
        if module.split(".")[0] not in _ALGORITHM_MODULES:
            raise PlannerLoadError(f"{str(directory)!r} names the algorithm {meta['algorithm']!r}; only classes from "
                                   f"{' or '.join(_ALGORITHM_MODULES)} are loaded.")
        algorithm = getattr(importlib.import_module(module), name)
        model = algorithm.load(directory / _MODEL_FILE, device=device)
        spec = meta["encoder"]
        encoder = "bytes" if spec["type"] == "bytes" else HashedWordEncoder(spec["dim"], spec["recent_lines"])
        return cls(model, saved, encoder=encoder, max_steps=meta["max_steps"], seed=seed)
