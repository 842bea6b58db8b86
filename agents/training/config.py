"""The training configuration: one documented dataclass, loadable from YAML, overridable by flags.

    config = TrainConfig.load("examples/configs/sim_planner_grpo.yaml", overrides=["updates=20"])

Every field has a default, so ``TrainConfig()`` is the README's main job: the embedded SmolLM2 model
as reasoner and as planner (LoRA), two-term sums of up to two-digit numbers from the offline
``chain_sum`` suite (easy enough for a 135M model to get some right), planner-only GRPO (the plug-in
planner), sized to finish within 20 minutes on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from agents.algorithms.grpo import GRPOConfig
from agents.algorithms.ppo import PPOConfig
from agents.backends.base import GenerationConfig
from rsim_env.errors import ConfigError

SCHEDULES = ("planner-only", "reasoner-only", "alternating", "joint", "two-stage")
ALGORITHMS = ("grpo", "ppo")


@dataclass
class TrainConfig:
    """Everything a training run needs; saved resolved as ``config.yaml`` in the run directory."""

    suites: list[str] = field(default_factory=lambda: ["rsim/ChainSum-v0"])
    """Environment ids trained in order; more than one is continual learning (one stage each)."""
    schedule: str = "planner-only"
    """planner-only | reasoner-only | alternating | joint | two-stage (see DESIGN §5)."""
    algorithm: str = "grpo"
    """grpo | ppo, for every agent that learns."""
    planner: str = "llm:smollm2-135m-instruct"
    """``llm:<model>`` (an LLM planner), ``mlp`` (hashed words -> MLP; fast, for the simulated suite)."""
    planner_head: str = "labels"
    """LLM planner head: ``labels`` (logits of the strategy-number tokens) or ``linear``."""
    reasoner: str = "smollm2-135m-instruct"
    """``sim`` (the simulated reasoner), ``smollm2-135m-instruct``, ``tiny-random``, a Hub id or a path."""
    lora_r: int = 8
    """LoRA rank for LLM agents; 0 fine-tunes all weights."""
    updates: int = 8
    """Policy updates per stage."""
    groups_per_update: int = 4
    """Tasks per update; each is played ``group_size`` times."""
    group_size: int = 4
    """Episodes per task (GRPO's ``num_generations``); the group is the baseline for advantages."""
    batch_size: int = 16
    """Episodes advanced in lockstep during rollouts (the LLM batch)."""
    planner_lr: float = 1e-3
    """Adam learning rate of the planner."""
    reasoner_lr: float = 1e-5
    """Adam learning rate of the reasoner."""
    epochs: int = 1
    """Gradient passes over each update's batch (TRL's ``num_iterations``, PPO's update epochs)."""
    alternating_k: int = 1
    """``alternating``: this many planner updates, then this many reasoner updates."""
    joint_lambda: float = 0.5
    """``joint``: loss = lambda * planner loss + (1 - lambda) * reasoner loss."""
    two_stage_fraction: float = 0.5
    """``two-stage``: share of each stage's updates that are planner-only before switching to joint."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO's clip range, KL coefficient, loss aggregation and reward scaling (TRL names). Its
    ``num_generations``, ``temperature`` and ``num_iterations`` are kept equal to ``group_size``,
    ``temperature`` and ``epochs``; learning rates are ``planner_lr``/``reasoner_lr``."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO's discount, GAE lambda, clip ranges, loss coefficients and minibatches per epoch (CleanRL
    names). Its ``update_epochs`` is kept equal to ``epochs``; learning rates are ``planner_lr``/``reasoner_lr``."""
    env_options: dict[str, Any] = field(
        default_factory=lambda: {"suite_kwargs": {"min_terms": 2, "max_terms": 2, "max_digits": 2}})
    """More ``rsim_env.make`` options for every suite, e.g. ``{suite_kwargs: {max_terms: 2}}`` to make a
    reasoning-gym suite easier, or ``{rewards: {repetition_penalty: 0.1}}``. ``reward_fn`` and
    ``token_counter`` may be functions or ``"package.module:function"`` import paths (how YAML holds them)."""
    max_steps: int = 3
    """The env's step cap (planner decisions per episode)."""
    max_tokens: int = 512
    """The env's token budget for the reasoner's steps."""
    max_new_tokens: int = 48
    """Tokens the reasoner may write per step."""
    temperature: float = 0.7
    """Reasoner sampling temperature during training rollouts (evaluation decodes greedily)."""
    generation_options: dict[str, Any] = field(default_factory=dict)
    """More :class:`~agents.backends.base.GenerationConfig` fields for the reasoner's steps: ``top_p``,
    ``delimiter`` (null: steps end only at the token cap, an answer or EOS), ``stop_at_answer``,
    ``answer_patterns``, ``eos_token_ids`` (``[]``: never stop at EOS)."""
    eval_every: int = 4
    """Evaluate on the test split every this many updates (0: only at the end of each stage)."""
    eval_episodes: int = 16
    """Episodes per periodic evaluation."""
    final_eval_episodes: int = 48
    """Episodes per planner in the final comparison."""
    baselines: list[str] = field(default_factory=lambda: ["none", "random"])
    """Planners the trained one is compared with at the end (see ``rsim eval --planner``)."""
    checkpoint_every: int = 1
    """Write a checkpoint every this many updates."""
    seed: int = 0
    """Seeds tasks, sampling and initial weights; a run is reproducible on CPU."""
    device: str = "cpu"
    """cpu, cuda, cuda:1, ..."""
    dtype: str = "float32"
    """float32, bfloat16 or float16 for LLM agents."""
    out: str = "runs/train"
    """Run directory: config, metrics.jsonl, checkpoints, the exported planner, report and plots."""

    def __post_init__(self) -> None:
        if isinstance(self.grpo, dict):
            self.grpo = _build(GRPOConfig, self.grpo, "grpo")
        if isinstance(self.ppo, dict):
            self.ppo = _build(PPOConfig, self.ppo, "ppo")
        self.grpo = dataclasses.replace(self.grpo, num_generations=self.group_size, temperature=self.temperature,
                                        num_iterations=self.epochs, max_completion_length=self.max_new_tokens * self.max_steps)
        self.ppo = dataclasses.replace(self.ppo, update_epochs=self.epochs)
        if isinstance(self.suites, str):
            self.suites = [self.suites]
        if isinstance(self.baselines, str):
            self.baselines = [self.baselines]
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}.")
        if not isinstance(self.env_options, dict):
            raise ConfigError(f"env_options must be a mapping of env options, got {self.env_options!r}.")
        clash = sorted({"max_steps", "max_tokens", "split"} & set(self.env_options))
        if clash:
            raise ConfigError(f"Set {clash} as top-level config fields, not inside env_options.")
        for key in FUNCTION_OPTIONS:
            if isinstance(self.env_options.get(key), str):
                self.env_options = {**self.env_options, key: _import_function(key, self.env_options[key])}
        _check_generation_options(self.generation_options)
        try:
            self.generation(seed=0, greedy=False)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"generation_options: {error}") from None
        if not self.suites:
            raise ConfigError("suites must name at least one environment id.")
        for name in ("updates", "groups_per_update", "group_size", "batch_size", "epochs", "alternating_k",
                     "max_steps", "max_tokens", "max_new_tokens", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not 0.0 <= self.joint_lambda <= 1.0:
            raise ConfigError(f"joint_lambda must be in [0, 1], got {self.joint_lambda}.")
        if self.schedule != "planner-only" and self.reasoner == "sim":
            raise ConfigError("The simulated reasoner cannot learn; use schedule planner-only with reasoner sim.")

    @property
    def episodes_per_update(self) -> int:
        return self.groups_per_update * self.group_size

    def env_kwargs(self) -> dict[str, Any]:
        """``rsim_env.make`` options for every suite of the run (the split is chosen per rollout)."""
        return {**self.env_options, "max_steps": self.max_steps, "max_tokens": self.max_tokens}

    def generation(self, *, seed: int, greedy: bool) -> GenerationConfig:
        """How the reasoner writes each step in a rollout (greedy for evaluation)."""
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in self.generation_options.items()}
        return GenerationConfig(max_new_tokens=self.max_new_tokens, temperature=0.0 if greedy else self.temperature,
                                seed=seed, **options)

    # -- YAML and overrides --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data; functions in ``env_options`` become their ``"module:name"`` import paths."""
        data = dataclasses.asdict(self)
        data["env_options"] = {k: _import_path(k, v) if callable(v) else v for k, v in self.env_options.items()}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
        """A config from a YAML file (or the defaults), then ``key=value`` overrides (``grpo.beta=0.04``)."""
        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"Config file {str(path)!r} does not exist.")
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path} must hold a mapping of config fields.")
            data = loaded
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"Override {item!r} must look like key=value (e.g. updates=20).")
            target = data
            *parents, leaf = key.strip().split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = yaml.safe_load(raw)
        return cls.from_dict(data)


FUNCTION_OPTIONS = ("reward_fn", "token_counter")
"""``env_options`` that hold functions; in YAML they are ``"package.module:function"`` import paths."""


def _import_path(key: str, fn: Any) -> str:
    qualname = getattr(fn, "__qualname__", "")
    if not qualname or "<" in qualname or not getattr(fn, "__module__", None):
        raise ConfigError(f"env_options[{key!r}] = {fn!r} cannot be saved in config.yaml; use a function defined at "
                          "the top level of an importable module (it is saved as 'module:function').")
    return f"{fn.__module__}:{qualname}"


def _import_function(key: str, path: str) -> Callable[..., Any]:
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ConfigError(f"env_options[{key!r}] must be a function or a 'package.module:function' path, got {path!r}.")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"env_options[{key!r}]: cannot import {path!r} ({error}).") from None
    if not callable(target):
        raise ConfigError(f"env_options[{key!r}]: {path!r} is not callable.")
    return target


GENERATION_OPTIONS = ("top_p", "delimiter", "stop_at_answer", "answer_patterns", "eos_token_ids")
"""GenerationConfig fields ``generation_options`` may set (the others are top-level config fields)."""


def _check_generation_options(options: Any) -> None:
    if not isinstance(options, dict):
        raise ConfigError(f"generation_options must be a mapping, got {options!r}.")
    unknown = sorted(set(options) - set(GENERATION_OPTIONS))
    if unknown:
        raise ConfigError(f"Unknown generation_options {unknown}; valid: {list(GENERATION_OPTIONS)} "
                          "(max_new_tokens, temperature and seed are top-level config fields).")


def _build(cls: type, data: dict[str, Any], what: str) -> Any:
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(f"Unknown {what} field(s) {unknown}. Valid fields: {sorted(valid)}.")
    return cls(**data)
