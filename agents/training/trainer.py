"""The leader-follower trainer: rollouts, GRPO/PPO updates for the planner and/or the reasoner.

One update = one batch of episodes (``groups_per_update`` tasks x ``group_size`` episodes each, run
in lockstep by :func:`agents.rollout.rollout`), then gradient steps for the agents the schedule
trains at this update:

=================  ============================================================================
schedule           agents updated
=================  ============================================================================
``planner-only``   the planner; the reasoner is frozen (how a plug-in planner is trained)
``reasoner-only``  the reasoner; no strategies are injected (the plain GRPO baseline)
``alternating``    ``alternating_k`` planner updates, then ``alternating_k`` reasoner updates
``joint``          both, with one objective ``lambda * L_planner + (1 - lambda) * L_reasoner``
``two-stage``      planner-only for ``two_stage_fraction`` of each stage, then joint
=================  ============================================================================

The planner learns from its own reward (R_acc + R_terminal - R_penalty), one action per decision;
the reasoner from its reward, per generated token, with the injected strategy text and the prompts
masked out of its loss (:meth:`agents.rollout.Trajectory.reasoner_sequence`).

A run directory holds ``config.yaml``, ``metrics.jsonl``, ``checkpoints/`` (atomic; ``--resume``
continues from the latest one and reproduces the uninterrupted run's metrics on CPU), ``planner/``
(the exported plug-in planner), ``final_eval.json``, ``continual.json`` and ``report.md`` with plots.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import rsim_env
from agents.algorithms.grpo import group_advantages, grpo_loss
from agents.algorithms.ppo import ValueHead, gae_episode, ppo_loss
from agents.evaluation import EvalResult, evaluate, write_results
from agents.planners.baselines import NoStrategyPlanner, make_planner
from agents.planners.base import Planner
from agents.rollout import RolloutConfig, TextReasoner, Trajectory, rollout
from agents.training.config import TrainConfig
from rsim_env.atomic import write_json_atomic, write_text_atomic
from rsim_env.env.core import PLANNER, REASONER
from rsim_env.errors import ConfigError

log = logging.getLogger(__name__)

REASONER_MICRO_BATCH = 4
"""Sequences per reasoner forward pass; the vocabulary-sized logits dominate memory."""


@dataclass(frozen=True)
class Position:
    """Where a run is: stage index and update within the stage; ``global_update`` counts all."""

    stage: int
    update: int
    global_update: int


def update_seed(seed: int, position: Position) -> int:
    """A seed per update, so an update's rollout is the same whether or not the run was resumed."""
    return seed * 1_000_003 + position.global_update * 7_919 + 17


def trains(schedule: str, position: Position, updates: int, k: int, two_stage_fraction: float) -> set[str]:
    """Which agents learn at ``position`` under ``schedule`` (see the module docstring)."""
    if schedule == "planner-only":
        return {PLANNER}
    if schedule == "reasoner-only":
        return {REASONER}
    if schedule == "alternating":
        return {PLANNER} if (position.update // k) % 2 == 0 else {REASONER}
    if schedule == "joint":
        return {PLANNER, REASONER}
    if schedule == "two-stage":
        return {PLANNER} if position.update < round(two_stage_fraction * updates) else {PLANNER, REASONER}
    raise ConfigError(f"Unknown schedule {schedule!r}.")


class LeaderFollowerTrainer:
    """Trains a planner (leader) and/or a reasoner (follower) on rSIM environments.

    Args:
        config: the run's :class:`TrainConfig`.
        planner: a ready planner (default: built from ``config.planner``).
        reasoner: a ready reasoner backend (default: built from ``config.reasoner``).
        progress: show progress bars.
    """

    def __init__(self, config: TrainConfig, *, planner: Planner | None = None, reasoner: Any = None,
                 progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.run_dir = Path(config.out)
        self.strategies = rsim_env.make(config.suites[0], wrapped=False, **config.env_kwargs()).strategies
        torch.manual_seed(config.seed)
        self.sim_reasoner = None
        self.reasoner = reasoner if reasoner is not None else self._build_reasoner()
        self.learns = {PLANNER} if config.schedule == "planner-only" else (
            {REASONER} if config.schedule == "reasoner-only" else {PLANNER, REASONER})
        if PLANNER in self.learns:
            self.planner = planner if planner is not None else self._build_planner()
            self.rollout_planner: Planner = self.planner
        else:  # plain GRPO on the reasoner: no strategy is injected
            self.planner = None
            self.rollout_planner = NoStrategyPlanner(self.strategies)
        self.reasoner_model: nn.Module | None = None
        self.planner_value: Callable | None = None
        self.reasoner_value_head: ValueHead | None = None
        if REASONER in self.learns:
            self.reasoner_model = self._trainable_reasoner_model()
        if config.algorithm == "ppo":
            self._build_value_heads()
        self.optimizers = self._build_optimizers()
        self.references = self._build_references()

    # -- construction -------------------------------------------------------------------------------
    def _build_reasoner(self) -> Any:
        if self.config.reasoner == "sim":
            from rsim_env.sim import SimulatedReasoner

            self.sim_reasoner = SimulatedReasoner(self.strategies, seed=self.config.seed)
            return TextReasoner(self.sim_reasoner.act)
        from agents.backends.transformers_backend import TransformersBackend

        return TransformersBackend.from_pretrained(self.config.reasoner, device=self.config.device,
                                                   dtype=self.config.dtype)

    def _build_planner(self) -> Planner:
        """The learning planner: ``mlp`` or ``llm:<model>``."""
        c = self.config
        if c.planner == "mlp":
            from agents.planners.mlp import MLPPlanner

            return MLPPlanner(self.strategies, max_steps=c.max_steps, seed=c.seed)
        if c.planner.startswith("llm:"):
            from agents.planners.llm import LLMPlanner

            return LLMPlanner(c.planner[4:], self.strategies, head=c.planner_head, device=c.device, dtype=c.dtype,
                              lora_r=c.lora_r or None, seed=c.seed)
        raise ConfigError(f"planner {c.planner!r} cannot learn; use 'mlp' or 'llm:<model>'.")

    def _trainable_reasoner_model(self) -> nn.Module:
        model = getattr(self.reasoner, "model", None)
        if model is None:
            raise ConfigError(f"The reasoner {self.config.reasoner!r} has no model to train.")
        if self.config.lora_r:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=self.config.lora_r, lora_alpha=2 * self.config.lora_r, lora_dropout=0.0,
                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
            model = get_peft_model(model, lora)
            self.reasoner.model = model
        model.train()
        return model

    def _build_value_heads(self) -> None:
        if PLANNER in self.learns:
            if not hasattr(self.planner, "value"):
                raise ConfigError("PPO needs a planner with a value head (.value(observations)); "
                                  "use planner 'mlp' or 'llm:<model>', or algorithm grpo.")
            self.planner_value = self.planner.value
        if REASONER in self.learns:
            hidden = self.reasoner_model.config.hidden_size
            self.reasoner_value_head = ValueHead(hidden).to(next(self.reasoner_model.parameters()).device)

    def _build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {}
        if PLANNER in self.learns:
            optimizers[PLANNER] = torch.optim.Adam(self.planner.trainable_parameters(), lr=self.config.planner_lr)
        if REASONER in self.learns:
            params = [p for p in self.reasoner_model.parameters() if p.requires_grad]
            if self.reasoner_value_head is not None:
                params += list(self.reasoner_value_head.parameters())
            optimizers[REASONER] = torch.optim.Adam(params, lr=self.config.reasoner_lr)
        return optimizers

    def _build_references(self) -> dict[str, Any]:
        """Frozen copies for the KL term (GRPO with beta > 0); LoRA reasoners use disabled adapters."""
        refs: dict[str, Any] = {}
        if self.config.algorithm != "grpo" or self.config.grpo.beta == 0:
            return refs
        if PLANNER in self.learns:
            refs[PLANNER] = copy.deepcopy(self.planner)
        if REASONER in self.learns and not self.config.lora_r:
            refs[REASONER] = copy.deepcopy(self.reasoner_model).eval()
        return refs

    # -- the loop -----------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> list[EvalResult]:
        """Run every stage; returns the final comparison (trained planner vs the baselines)."""
        c = self.config
        start = self._prepare_run_dir(resume)
        total = c.updates * len(c.suites)
        bar = tqdm(total=total, initial=start.global_update, desc="updates", unit="upd", disable=not self.progress)
        position = start
        while position.global_update < total:
            env_id = c.suites[position.stage]
            learners = trains(c.schedule, position, c.updates, c.alternating_k, c.two_stage_fraction)
            metrics = self.update(env_id, position, learners)
            self._append_metrics({"kind": "train", **metrics})
            last_in_stage = position.update == c.updates - 1
            if (c.eval_every and (position.update + 1) % c.eval_every == 0) or last_in_stage:
                for line in self._periodic_eval(position, every_suite=last_in_stage):
                    self._append_metrics(line)
            position = Position(position.stage + last_in_stage, 0 if last_in_stage else position.update + 1,
                                position.global_update + 1)
            if position.global_update % c.checkpoint_every == 0 or position.global_update == total:
                self.save_checkpoint(position)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['planner_reward']:.3f}", acc=f"{metrics['accuracy']:.2f}")
        bar.close()
        return self.finish()

    def update(self, env_id: str, position: Position, learners: set[str]) -> dict[str, Any]:
        """One rollout and the gradient steps of ``learners``; returns the update's metrics.

        Targets (advantages; for PPO also returns and old values) are computed once on the whole batch,
        then ``epochs`` passes each take one gradient step per minibatch (PPO: ``ppo.num_minibatches``
        minibatches of whole episodes in a seeded random order; GRPO: the whole batch).
        """
        c = self.config
        seed = update_seed(c.seed, position)
        if self.sim_reasoner is not None:
            self.sim_reasoner.seed(seed)
        started = time.perf_counter()
        trajectories = self._rollout(env_id, c.episodes_per_update, seed, greedy=False)
        rollout_seconds = time.perf_counter() - started
        targets = self.targets(trajectories, learners)
        minibatches = min(c.ppo.num_minibatches, len(trajectories)) if c.algorithm == "ppo" else 1
        generator = torch.Generator().manual_seed(seed)
        losses: dict[str, float] = {}
        stats: dict[str, float] = {}
        for _ in range(c.epochs):
            order = torch.randperm(len(trajectories), generator=generator) if minibatches > 1 else torch.arange(len(trajectories))
            for chunk in torch.tensor_split(order, minibatches):
                picked = [int(i) for i in chunk]
                losses, stats = self.optimise([trajectories[i] for i in picked], [targets[i] for i in picked], learners)
        if REASONER in learners and hasattr(self.reasoner, "reset"):
            self.reasoner.reset()  # cached keys/values were computed by the old weights
        seconds = time.perf_counter() - started
        generated = sum(t.generated_tokens for t in trajectories)
        usage = Counter(self.strategies.names[s] for t in trajectories for s in t.strategies)
        entropies = [d.planner_entropy for t in trajectories for d in t.decisions]
        return {
            "update": position.global_update, "stage": position.stage, "suite": env_id,
            "episodes": len(trajectories), "learners": sorted(learners),
            "planner_reward": float(np.mean([t.rewards[PLANNER] for t in trajectories])),
            "reasoner_reward": float(np.mean([t.rewards[REASONER] for t in trajectories])),
            "accuracy": float(np.mean([t.correct for t in trajectories])),
            "strategy_usage": {name: usage.get(name, 0) for name in self.strategies.names},
            "strategies_per_episode": float(np.mean([len(t.decisions) for t in trajectories])),
            "planner_entropy": float(np.mean(entropies)) if entropies else None,
            "kl": stats.get("kl"), "planner_loss": losses.get(PLANNER), "reasoner_loss": losses.get(REASONER),
            "generated_tokens": generated,
            "tokens_per_second": generated / rollout_seconds if rollout_seconds > 0 else 0.0,
            "seconds_per_update": seconds,
        }

    def _rollout(self, env_id: str, episodes: int, seed: int, *, greedy: bool,
                 task_indices: Sequence[int] | None = None, split: str = "train",
                 planner: Planner | None = None) -> list[Trajectory]:
        c = self.config
        generation = c.generation(seed=seed, greedy=greedy)
        config = RolloutConfig(batch_size=c.batch_size, group_size=c.group_size if task_indices is None else 1,
                               greedy=greedy, generation=generation, split=split, seed=seed)
        return rollout(env_id, planner or self.rollout_planner, self.reasoner, episodes=episodes, config=config,
                       task_indices=task_indices,
                       env_kwargs={**c.env_kwargs(), "split": split})

    # -- targets ------------------------------------------------------------------------------------
    def targets(self, trajectories: Sequence[Trajectory], learners: set[str]) -> list[dict[str, Any]]:
        """Per-episode learning targets, computed once per update before any gradient step.

        GRPO: ``<agent>_advantage``, the episode's group-relative advantage (one number). PPO:
        ``<agent>_advantage``, ``<agent>_return`` and ``<agent>_value`` tensors per decision (planner)
        or per reasoner token position (reasoner), from GAE over the values before the update.
        """
        c = self.config
        out: list[dict[str, Any]] = [{} for _ in trajectories]
        for agent in sorted(learners):
            rewards = torch.tensor([t.rewards[agent] for t in trajectories], dtype=torch.float32)
            if c.algorithm == "grpo":
                advantages = group_advantages(rewards, c.group_size, scale=c.grpo.scale_rewards)
                for row, advantage in zip(out, advantages):
                    row[f"{agent}_advantage"] = advantage
                continue
            per_episode = self._planner_values(trajectories) if agent == PLANNER else self._reasoner_values(trajectories)
            for row, values, reward in zip(out, per_episode, rewards):
                if values is None:
                    continue
                step_rewards = torch.zeros(len(values))
                step_rewards[-1] = reward  # the reward is terminal: all on the last decision / token
                advantage, returns = gae_episode(step_rewards, values, c.ppo.gamma, c.ppo.gae_lambda)
                row.update({f"{agent}_advantage": advantage, f"{agent}_return": returns, f"{agent}_value": values})
        return out

    @torch.no_grad()
    def _planner_values(self, trajectories: Sequence[Trajectory]) -> list[torch.Tensor]:
        values = self.planner_value(_planner_observations(trajectories)).float().cpu()
        return list(torch.split(values, [len(t.decisions) for t in trajectories]))

    @torch.no_grad()
    def _reasoner_values(self, trajectories: Sequence[Trajectory]) -> list[torch.Tensor | None]:
        """V at every position that predicts a generated token, per episode (``None``: no such token)."""
        sequences = self._reasoner_sequences(trajectories)
        out: list[torch.Tensor | None] = [None] * len(trajectories)
        keep = [i for i, s in enumerate(sequences) if sum(s[1]) > 0]
        for start in range(0, len(keep), REASONER_MICRO_BATCH):
            chunk = keep[start:start + REASONER_MICRO_BATCH]
            ids, mask, _ = _right_pad([sequences[i] for i in chunk], self._pad_id())
            hidden = self._reasoner_forward(ids, mask, hidden=True).hidden_states[-1]
            values = self.reasoner_value_head(hidden[:, :-1]).squeeze(-1).float().cpu()
            for row, i in enumerate(chunk):
                out[i] = values[row][mask[row, 1:] == 1]
        return out

    # -- losses -------------------------------------------------------------------------------------
    def optimise(self, trajectories: Sequence[Trajectory], targets: Sequence[dict[str, Any]],
                 learners: set[str]) -> tuple[dict[str, float], dict[str, float]]:
        """One gradient step for each of ``learners`` on these episodes (joint: one combined objective)."""
        weights = {PLANNER: 1.0, REASONER: 1.0}
        if learners == {PLANNER, REASONER}:
            weights = {PLANNER: self.config.joint_lambda, REASONER: 1.0 - self.config.joint_lambda}
        for name in learners:
            self.optimizers[name].zero_grad(set_to_none=True)
        losses: dict[str, float] = {}
        stats: dict[str, float] = {}
        if PLANNER in learners:
            loss, stats = self.planner_loss(trajectories, targets)
            (weights[PLANNER] * loss).backward()
            losses[PLANNER] = loss.item()
        if REASONER in learners:
            losses[REASONER], reasoner_stats = self.reasoner_loss(trajectories, targets, backward_weight=weights[REASONER])
            stats = {**reasoner_stats, **stats}
        for name in learners:
            params = [p for group in self.optimizers[name].param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self._max_grad_norm())
            self.optimizers[name].step()
        return losses, stats

    def _max_grad_norm(self) -> float:
        return self.config.grpo.max_grad_norm if self.config.algorithm == "grpo" else self.config.ppo.max_grad_norm

    def planner_loss(self, trajectories: Sequence[Trajectory], targets: Sequence[dict[str, Any]]
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """GRPO or PPO loss of the planner on these episodes (one action per decision)."""
        observations = _planner_observations(trajectories)
        actions = [d.strategy for t in trajectories for d in t.decisions]
        lengths = [len(t.decisions) for t in trajectories]
        old = _pad(torch.tensor([d.planner_logprob for t in trajectories for d in t.decisions]), lengths)[0]
        logp, entropy = self.planner.logprobs_and_entropy(observations, actions)
        logp, mask = _pad(logp, lengths)
        if self.config.algorithm == "grpo":
            ref = None
            if PLANNER in self.references:
                with torch.no_grad():
                    ref = _pad(self.references[PLANNER].logprobs_and_entropy(observations, actions)[0], lengths)[0]
            advantages = torch.stack([t[f"{PLANNER}_advantage"] for t in targets])
            loss, stats = grpo_loss(logp, old, advantages, mask, ref_logp=ref, config=self.config.grpo)
            return loss, _floats(stats)
        values = _pad(self.planner_value(observations), lengths)[0]
        advantages, returns, old_values = (_pad(torch.cat([t[f"{PLANNER}_{k}"] for t in targets]), lengths)[0]
                                           for k in ("advantage", "return", "value"))
        loss, stats = ppo_loss(logp, old, advantages, values, old_values, returns, _pad(entropy, lengths)[0],
                               mask=mask, config=self.config.ppo)
        return loss, _floats(stats)

    def _reasoner_sequences(self, trajectories: Sequence[Trajectory]) -> list[tuple[list[int], list[int], list[float]]]:
        eos: frozenset[int] = frozenset()
        if hasattr(self.reasoner, "eos_token_ids"):
            eos = self.reasoner.eos_token_ids(self.config.generation(seed=0, greedy=True))
        return [t.reasoner_sequence(eos) for t in trajectories]

    def reasoner_loss(self, trajectories: Sequence[Trajectory], targets: Sequence[dict[str, Any]],
                      backward_weight: float = 1.0) -> tuple[float, dict[str, float]]:
        """GRPO or PPO loss of the reasoner, per generated token; backpropagated in micro-batches.

        Only tokens the reasoner generated carry weight (the loss mask of
        :meth:`~agents.rollout.Trajectory.reasoner_sequence`). Returns the loss over all these episodes
        and the token-weighted mean KL (GRPO with a reference); the gradients are those of that loss.
        """
        c = self.config
        sequences = self._reasoner_sequences(trajectories)
        keep = [i for i, s in enumerate(sequences) if sum(s[1]) > 0]
        if not keep:
            return 0.0, {}
        total_tokens = sum(sum(sequences[i][1]) for i in keep)
        total, kl = 0.0, 0.0
        for start in range(0, len(keep), REASONER_MICRO_BATCH):
            chunk = keep[start:start + REASONER_MICRO_BATCH]
            ids, mask, old = _right_pad([sequences[i] for i in chunk], self._pad_id())
            token_mask = (mask[:, 1:] == 1).float()
            old = old[:, 1:]
            if c.algorithm == "grpo":
                logp, _, _ = self._token_logprobs(ids, mask)
                ref = self._reasoner_reference(ids, mask) if c.grpo.beta else None
                advantages = torch.stack([targets[i][f"{REASONER}_advantage"] for i in chunk])
                loss, stats = grpo_loss(logp, old, advantages, token_mask, ref_logp=ref, config=c.grpo)
                weight = _micro_weight(c.grpo.loss_type, token_mask, len(chunk), len(keep), total_tokens)
                kl += float(stats["kl"]) * float(token_mask.sum()) / total_tokens
            else:
                logp, entropy, hidden = self._token_logprobs(ids, mask, hidden=True, entropy=True)
                values = self.reasoner_value_head(hidden[:, :-1]).squeeze(-1).float().cpu()
                advantages, returns, old_values = (
                    _scatter_tokens([targets[i][f"{REASONER}_{k}"] for i in chunk], token_mask)
                    for k in ("advantage", "return", "value"))
                loss, _ = ppo_loss(logp, old, advantages, values, old_values, returns, entropy, mask=token_mask,
                                   config=c.ppo)
                weight = float(token_mask.sum()) / total_tokens
            (backward_weight * weight * loss).backward()
            total += weight * loss.item()
        return total, ({"kl": kl} if c.algorithm == "grpo" and c.grpo.beta else {})

    def _pad_id(self) -> int:
        tokenizer = self.reasoner.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def _reasoner_forward(self, ids: torch.Tensor, mask: torch.Tensor, *, model: nn.Module | None = None,
                          hidden: bool = False) -> Any:
        """The reasoner's (or ``model``'s) forward pass over right-padded sequences, on its device."""
        model = model if model is not None else self.reasoner_model
        device = next(model.parameters()).device
        return model(input_ids=ids.to(device), attention_mask=(mask >= 0).long().to(device), output_hidden_states=hidden)

    def _token_logprobs(self, ids: torch.Tensor, mask: torch.Tensor, *, hidden: bool = False, entropy: bool = False,
                        model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """log pi(token_t | tokens_<t) [B, L-1] at the sampling temperature, as the backend sampled them;
        optionally the per-position entropy [B, L-1] and the last hidden states [B, L, H]."""
        out = self._reasoner_forward(ids, mask, model=model, hidden=hidden)
        logits = out.logits[:, :-1].float() / (self.config.temperature or 1.0)
        log_probs = torch.log_softmax(logits, dim=-1)
        logp = log_probs.gather(-1, ids[:, 1:, None].to(logits.device)).squeeze(-1)
        token_entropy = -(log_probs.exp() * log_probs).sum(-1).cpu() if entropy else None
        return logp.cpu(), token_entropy, out.hidden_states[-1] if hidden else None

    @torch.no_grad()
    def _reasoner_reference(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token log-probs under the frozen reference: a full copy, or the LoRA model with adapters off."""
        if REASONER in self.references:
            return self._token_logprobs(ids, mask, model=self.references[REASONER])[0]
        with self.reasoner_model.disable_adapter():
            return self._token_logprobs(ids, mask)[0]

    # -- evaluation ---------------------------------------------------------------------------------
    def _periodic_eval(self, position: Position, every_suite: bool) -> list[dict[str, Any]]:
        """Test-split evaluation of the current planner on the suites trained so far, or on every
        suite of the run at the end of a stage (the transfer/forgetting table's row)."""
        lines = []
        suites = self.config.suites if every_suite else self.config.suites[: position.stage + 1]
        for env_id in dict.fromkeys(suites):
            result = self._evaluate(env_id, self.rollout_planner, "trained", self.config.eval_episodes)
            lines.append({
                "kind": "eval", "update": position.global_update, "stage": position.stage, "suite": env_id,
                "split": "test", "accuracy": result.accuracy, "accuracy_ci": list(result.accuracy_ci),
                "planner_reward": result.planner_reward, "strategies_per_episode": result.strategies_per_episode,
                "episodes_detail": [{"strategies": len(e["strategies"]), "correct": e["correct"]}
                                    for e in result.per_episode],
            })
        return lines

    def _evaluate(self, env_id: str, planner: Planner, name: str, episodes: int) -> EvalResult:
        c = self.config
        generation = c.generation(seed=c.seed, greedy=True)
        return evaluate(env_id, planner, self.reasoner, episodes=episodes, planner_name=name,
                        reasoner_name=c.reasoner, split="test", progress=False,
                        config=RolloutConfig(batch_size=c.batch_size, greedy=True, generation=generation, seed=c.seed),
                        **c.env_kwargs())

    def finish(self) -> list[EvalResult]:
        """Export the planner, run the final comparison and continual table, write the report."""
        c = self.config
        if PLANNER in self.learns:
            export = self.run_dir / "planner"
            shutil.rmtree(export, ignore_errors=True)
            self.planner.save(export)
        final_env = c.suites[-1]
        results = [self._evaluate(final_env, self.rollout_planner, f"trained ({c.planner})", c.final_eval_episodes)]
        for name in c.baselines:
            baseline = make_planner(name, self.strategies)
            results.append(self._evaluate(final_env, baseline, name, c.final_eval_episodes))
        write_results(results, self.run_dir / "final")
        write_json_atomic(self.run_dir / "final_eval.json", [r.to_dict() for r in results])
        if len(c.suites) > 1:
            self._write_continual()
        from agents.training.report import write_report

        write_report(self.run_dir)
        return results

    def _write_continual(self) -> None:
        """The transfer/forgetting matrix from the eval lines written after each stage."""
        suites = list(dict.fromkeys(self.config.suites))
        lines = [json.loads(x) for x in (self.run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
        accuracy, ci = [], []
        for stage in range(len(self.config.suites)):
            last_update = (stage + 1) * self.config.updates - 1
            by_suite = {m["suite"]: m for m in lines if m["kind"] == "eval" and m["update"] == last_update}
            accuracy.append([by_suite[s]["accuracy"] if s in by_suite else None for s in suites])
            ci.append([by_suite[s]["accuracy_ci"] if s in by_suite else None for s in suites])
        write_json_atomic(self.run_dir / "continual.json",
                          {"stages": self.config.suites, "suites": suites, "accuracy": accuracy, "accuracy_ci": ci})

    # -- run directory, checkpoints ----------------------------------------------------------------------
    def _prepare_run_dir(self, resume: bool) -> Position:
        metrics = self.run_dir / "metrics.jsonl"
        if resume:
            position = self.load_checkpoint()
            if position is not None:
                log.info("resuming from update %d", position.global_update)
                return position
            log.info("no checkpoint in %s; starting a new run", self.run_dir)
        elif metrics.exists() and metrics.stat().st_size:
            raise ConfigError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out.")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir / "config.yaml", self.config.to_yaml())
        write_text_atomic(metrics, "")
        return Position(0, 0, 0)

    def _append_metrics(self, line: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def _modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {}
        if PLANNER in self.learns:
            modules[PLANNER] = self.planner
        if self.reasoner_model is not None:
            modules[REASONER] = self.reasoner_model
        if self.reasoner_value_head is not None:
            modules["reasoner_value"] = self.reasoner_value_head
        return modules

    def save_checkpoint(self, position: Position) -> Path:
        """Write trainable weights, optimiser states and the position, atomically (temp dir + rename)."""
        root = self.run_dir / "checkpoints"
        final = root / f"update-{position.global_update:06d}"
        tmp = root / f".tmp-{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = {name: {k: v for k, v in m.state_dict().items() if k in _trainable_names(m)}
                 for name, m in self._modules().items()}
        torch.save({"modules": state, "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}},
                   tmp / "state.pt")
        metrics_lines = sum(1 for _ in open(self.run_dir / "metrics.jsonl", encoding="utf-8"))
        write_json_atomic(tmp / "position.json", {"stage": position.stage, "update": position.update,
                                                  "global_update": position.global_update, "metrics_lines": metrics_lines})
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        write_text_atomic(root / "latest", final.name)
        for old in sorted(root.glob("update-*"))[:-2]:  # keep the two newest
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self) -> Position | None:
        """Restore the latest checkpoint; trims metrics written after it. ``None`` if there is none."""
        latest = self.run_dir / "checkpoints" / "latest"
        if not latest.exists():
            return None
        directory = latest.parent / latest.read_text().strip()
        state = torch.load(directory / "state.pt", weights_only=False)
        for name, module in self._modules().items():
            module.load_state_dict(state["modules"][name], strict=False)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        position = json.loads((directory / "position.json").read_text())
        metrics = self.run_dir / "metrics.jsonl"
        kept = metrics.read_text(encoding="utf-8").splitlines(keepends=True)[: position["metrics_lines"]]
        write_text_atomic(metrics, "".join(kept))
        return Position(position["stage"], position["update"], position["global_update"])


# -- tensor helpers ------------------------------------------------------------------------------------
def _pad(values: torch.Tensor, lengths: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a flat [N] tensor into rows of ``lengths`` and right-pad: ([B, T], mask [B, T])."""
    rows = torch.split(values, list(lengths))
    width = max(lengths)
    padded = torch.stack([torch.nn.functional.pad(r, (0, width - len(r))) for r in rows])
    mask = torch.stack([torch.arange(width) < n for n in lengths]).float()
    return padded, mask


def _planner_observations(trajectories: Sequence[Trajectory]) -> list[dict[str, Any]]:
    """What the planner saw at each decision, in episode order."""
    return [{"text": d.planner_text, "action_mask": d.action_mask} for t in trajectories for d in t.decisions]


def _scatter_tokens(rows: Sequence[torch.Tensor], token_mask: torch.Tensor) -> torch.Tensor:
    """Place each episode's per-token values at the positions where ``token_mask`` [B, L-1] is set."""
    out = torch.zeros_like(token_mask)
    for i, row in enumerate(rows):
        out[i, token_mask[i].bool()] = row
    return out


def _right_pad(sequences: Sequence[tuple[list[int], list[int], list[float]]], pad_id: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids [B, L] (padded with ``pad_id``), loss mask [B, L] (-1 on padding) and old log-probs."""
    width = max(len(s[0]) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.full((len(sequences), width), -1, dtype=torch.long)
    old = torch.zeros((len(sequences), width))
    for i, (tokens, loss_mask, logprobs) in enumerate(sequences):
        ids[i, : len(tokens)] = torch.tensor(tokens)
        mask[i, : len(tokens)] = torch.tensor(loss_mask)
        old[i, : len(tokens)] = torch.tensor(logprobs)
    return ids, mask, old


def _micro_weight(loss_type: str, token_mask: torch.Tensor, chunk: int, batch: int, total_tokens: int) -> float:
    """The share of the whole-batch GRPO loss that one micro-batch's loss stands for."""
    if loss_type in ("bnpo", "dapo"):
        return float(token_mask.sum()) / total_tokens
    return chunk / batch  # grpo (mean over sequences) and dr_grpo (sum / (batch x max length))


def _trainable_names(module: nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if p.requires_grad}


def _floats(stats: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in stats.items()}
