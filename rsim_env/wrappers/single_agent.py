"""Single-agent Gymnasium views of the two-agent environment.

* :class:`PlannerEnv`: the planner's view, with a fixed reasoner inside (by default the simulated
  reasoner on simulated suites). Numeric observations, ``Discrete`` actions and ``action_masks()``,
  so Stable-Baselines3's ``PPO`` and sb3-contrib's ``MaskablePPO`` work out of the box.
* :class:`ReasonerEnv`: the reasoner's view, with a fixed planner inside. Text observations and
  text actions.

Both pass :func:`gymnasium.utils.env_checker.check_env`.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Literal, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rsim_env.env.core import PLANNER, REASONER, raw_env
from rsim_env.errors import ConfigError
from rsim_env.registration import make

ReasonerFn = Callable[[str], str]
"""A reasoner: the reasoner's prompt text -> the next step."""
PlannerFn = Callable[[Mapping[str, Any]], int]
"""A planner: the planner's observation dict (``text``, ``action_mask``) -> a strategy index."""


class HashedWordEncoder:
    """Turns the planner's text into a fixed-size binary vector an MLP can learn from.

    Three blocks: hashed words of the question, hashed words of the last ``recent_lines`` steps, and
    the fraction of the step cap used. Raw UTF-8 bytes (the env's ``"observation"``) are a faithful
    encoding but a poor input for small networks: a state change flips a few byte values by one
    unit. Hashing words (``crc32``, stable across processes) keeps the words that carry the state
    (``doubt=yes``, ``progress=2/3``, ``[verification]``) as separate features.
    """

    def __init__(self, dim: int = 256, recent_lines: int = 1) -> None:
        if dim < 8 or recent_lines < 1:
            raise ConfigError("HashedWordEncoder needs dim >= 8 and recent_lines >= 1.")
        self.dim = dim
        self.recent_lines = recent_lines
        self.size = 2 * dim + 1

    def space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.size,), np.float32)

    def _hash_into(self, out: np.ndarray, offset: int, text: str) -> None:
        for word in text.lower().split():
            out[offset + zlib.crc32(word.encode()) % self.dim] = 1.0

    def __call__(self, text: str, step: int, max_steps: int) -> np.ndarray:
        out = np.zeros(self.size, np.float32)
        question, _, steps = text.partition("\nSteps so far:\n")
        self._hash_into(out, 0, question)
        recent = steps.rstrip("\n").split("\n")[-self.recent_lines:] if steps.strip() else []
        self._hash_into(out, self.dim, " ".join(recent))
        out[-1] = min(1.0, step / max_steps)
        return out


def _as_callable(agent: Any, method: str) -> Callable:
    if hasattr(agent, method):
        return getattr(agent, method)
    if callable(agent):
        return agent
    raise ConfigError(f"Expected a callable or an object with .{method}(), got {type(agent).__name__}.")


def _default_reasoner(env: raw_env, seed: int | None) -> Any:
    if env.suite.name != "sim":
        raise ConfigError(
            f"PlannerEnv needs a reasoner for suite {env.suite.name!r}: pass reasoner=callable(text) -> step "
            "(e.g. an LLM reasoner from the agents package). Only simulated suites have a default."
        )
    from rsim_env.sim import SimulatedReasoner

    return SimulatedReasoner(env.strategies, seed=seed)


def _build(env: str | raw_env, env_kwargs: Mapping[str, Any]) -> raw_env:
    if isinstance(env, raw_env):
        if env_kwargs:
            raise ConfigError("Pass env options either to the env you built or as keywords, not both.")
        return env
    if isinstance(env, str):
        return make(env, wrapped=False, **env_kwargs)
    raise ConfigError(f"env must be a registered id or a rsim_env.raw_env, got {type(env).__name__}.")


class PlannerEnv(gym.Env):
    """The planner's single-agent view.

    Args:
        env: a registered id (``"rsim/Sim-v0"``) or a ``rsim_env.raw_env``.
        reasoner: ``f(reasoner_text) -> step`` or an object with ``.act(text)``; defaults to the
            simulated reasoner on simulated suites.
        encoder: ``"words"`` (:class:`HashedWordEncoder`, default), ``"bytes"`` (the env's UTF-8 byte
            array) or a :class:`HashedWordEncoder` instance.
        illegal_action: ``"coerce"`` (default) replaces a masked-out action by the terminating
            strategy (or the first legal one) and sets ``info["coerced"]``, so mask-unaware
            algorithms such as plain PPO can run; ``"raise"`` raises ``IllegalActionError``.
        **env_kwargs: options for ``make(env, ...)``.

    The reward is the planner's terminal reward; ``info`` at the end carries the env's episode info.
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(
        self,
        env: str | raw_env = "rsim/Sim-v0",
        *,
        reasoner: ReasonerFn | Any = None,
        encoder: Literal["words", "bytes"] | HashedWordEncoder = "words",
        illegal_action: Literal["coerce", "raise"] = "coerce",
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        if render_mode is not None:
            env_kwargs = {**env_kwargs, "render_mode": render_mode}
        self.env = _build(env, env_kwargs)
        self.render_mode = self.env.render_mode
        self._reasoner_obj = reasoner if reasoner is not None else _default_reasoner(self.env, None)
        self._reasoner = _as_callable(self._reasoner_obj, "act")
        if illegal_action not in ("coerce", "raise"):
            raise ConfigError(f"illegal_action must be 'coerce' or 'raise', got {illegal_action!r}.")
        self.illegal_action = illegal_action
        if encoder == "words":
            encoder = HashedWordEncoder()
        if encoder == "bytes":
            self._encoder = None
            self.observation_space = self.env.observation_space(PLANNER)["observation"]
        elif isinstance(encoder, HashedWordEncoder):
            self._encoder = encoder
            self.observation_space = encoder.space()
        else:
            raise ConfigError(f"encoder must be 'words', 'bytes' or a HashedWordEncoder, got {encoder!r}.")
        self.action_space = spaces.Discrete(len(self.env.strategies))

    def _obs(self) -> np.ndarray:
        obs = self.env.observe(PLANNER)
        if self._encoder is None:
            return obs["observation"]
        return self._encoder(obs["text"], len(self.env.infos[PLANNER]["strategies"]), self.env.config.max_steps)

    def action_masks(self) -> np.ndarray:
        """Legal strategies as booleans (the name sb3-contrib's MaskablePPO looks for)."""
        return self.env.action_mask().astype(bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
            if hasattr(self._reasoner_obj, "seed"):
                self._reasoner_obj.seed(seed + 1)
        self.env.reset(seed=seed, options=options)
        return self._obs(), dict(self.env.infos[PLANNER])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        info: dict[str, Any] = {}
        mask = self.env.action_mask()
        if (self.illegal_action == "coerce" and isinstance(action, (int, np.integer)) and 0 <= action < len(mask)
                and not mask[action]):
            term = self.env.strategies.termination_index
            action = term if mask[term] else int(np.flatnonzero(mask)[0])
            info["coerced"] = True
        self.env.step(action)
        self.env.step(self._reasoner(self.env.observe(REASONER)["text"]))
        terminated = self.env.terminations[PLANNER]
        truncated = self.env.truncations[PLANNER]
        reward = self.env.rewards[PLANNER] if (terminated or truncated) else 0.0
        info.update(self.env.infos[PLANNER])
        return self._obs(), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        return self.env.render()


class ReasonerEnv(gym.Env):
    """The reasoner's single-agent view.

    Args:
        env: a registered id or a ``rsim_env.raw_env``.
        planner: ``f(planner_observation) -> strategy index`` or an object with ``.act(obs)``;
            by default *continuation* until the step cap forces termination (no strategy injection,
            i.e. plain chain of thought).
        **env_kwargs: options for ``make(env, ...)``.

    Observations are the reasoner's ``Dict`` (``observation`` bytes and ``text``), actions are text
    steps; the reward is the reasoner's terminal reward.
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(self, env: str | raw_env = "rsim/Sim-v0", *, planner: PlannerFn | Any = None,
                 render_mode: str | None = None, **env_kwargs: Any) -> None:
        if render_mode is not None:
            env_kwargs = {**env_kwargs, "render_mode": render_mode}
        self.env = _build(env, env_kwargs)
        self.render_mode = self.env.render_mode
        self._planner = _as_callable(planner, "act") if planner is not None else self._continue_then_terminate
        self.observation_space = self.env.observation_space(REASONER)
        self.action_space = self.env.action_space(REASONER)

    def _continue_then_terminate(self, obs: Mapping[str, Any]) -> int:
        mask = obs["action_mask"]
        strategies = self.env.strategies
        if "continuation" in strategies and mask[strategies.index("continuation")]:
            return strategies.index("continuation")
        return strategies.termination_index

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self.env.reset(seed=seed, options=options)
        self.env.step(self._planner(self.env.observe(PLANNER)))
        return self.env.observe(REASONER), dict(self.env.infos[REASONER])

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        self.env.step(action)
        terminated = self.env.terminations[REASONER]
        truncated = self.env.truncations[REASONER]
        if not (terminated or truncated):
            self.env.step(self._planner(self.env.observe(PLANNER)))
        reward = self.env.rewards[REASONER] if (terminated or truncated) else 0.0
        return self.env.observe(REASONER), float(reward), bool(terminated), bool(truncated), dict(self.env.infos[REASONER])

    def render(self) -> str | None:
        return self.env.render()
