"""PPO: clipped policy loss, clipped value loss, entropy bonus, GAE and a value head.

Proximal Policy Optimization (Schulman et al. 2017, arXiv 1707.06347) with generalised advantage
estimation (Schulman et al. 2015, arXiv 1506.02438), written as pure functions over tensors in the
order of CleanRL's ``ppo.py``: advantages (GAE, eqs. 11-12), ratio, clipped surrogate (eq. 7),
clipped value loss, entropy bonus, and their sum (eq. 9); equation numbers are the PPO paper's.
Nothing here generates, samples or steps an optimizer.

The same functions serve both rSIM agents:

- the **planner**, one action per decision: tensors are ``[B, D]`` (episodes x decisions), padded
  episodes masked out;
- the **reasoner**, one action per generated token: tensors are ``[B, T]`` with a loss mask that is 1
  only on tokens the reasoner wrote (prompts and injected strategy text have mask 0).

Every loss takes an optional ``mask`` (bool or float, same shape as the per-step tensors). Masked
entries contribute nothing, not even NaN, and every mean is over the unmasked entries only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class PPOConfig:
    """PPO hyper-parameters; names and defaults follow CleanRL's ``ppo.py``."""

    learning_rate: float = 2.5e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor γ."""
    gae_lambda: float = 0.95
    """GAE's λ: 0 is the one-step TD error, 1 the Monte-Carlo return minus the value."""
    update_epochs: int = 4
    """Passes over each rollout batch (K epochs in the PPO paper)."""
    num_minibatches: int = 4
    """Minibatches per epoch; each holds ``batch_size // num_minibatches`` samples (``minibatch_size``)."""
    norm_adv: bool = True
    """Normalise advantages to zero mean and unit std within each minibatch (over unmasked entries)."""
    clip_coef: float = 0.2
    """ε of the clipped surrogate (eq. 7): the ratio is clipped to [1 - ε, 1 + ε]."""
    clip_vloss: bool = True
    """Clip the value update to ``clip_coef`` around the old value, as OpenAI baselines and CleanRL do."""
    ent_coef: float = 0.01
    """c2 in eq. 9: weight of the entropy bonus."""
    vf_coef: float = 0.5
    """c1 in eq. 9: weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip applied before each optimizer step."""
    target_kl: float | None = None
    """Stop the epoch loop early once the approximate KL exceeds this; None never stops."""

    def minibatch_size(self, batch_size: int) -> int:
        """Samples per minibatch for a rollout batch of ``batch_size`` samples (at least 1)."""
        return max(1, batch_size // self.num_minibatches)


# ---------------------------------------------------------------------------------------------------
# Masks: padded steps, prompts and injected text must contribute nothing, not even NaN
# ---------------------------------------------------------------------------------------------------


def zero_masked(values: Tensor, mask: Tensor | None) -> Tensor:
    """``values`` with masked entries set to 0: padding (even NaN or -inf) stays finite and gets no gradient."""
    if mask is None:
        return values
    return torch.where(mask.bool(), values, torch.zeros_like(values))


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` over the entries where ``mask`` is true (all entries if None); 0 if none are."""
    if mask is None:
        return values.mean()
    return zero_masked(values, mask).sum() / mask.bool().sum().clamp(min=1)


def masked_std(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Unbiased (n - 1) standard deviation over the unmasked entries, like ``Tensor.std``; 0 if n < 2."""
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    n = mask.bool().sum()
    deviations = zero_masked(values - masked_mean(values, mask), mask)
    return ((deviations ** 2).sum() / (n - 1).clamp(min=1)).sqrt() * (n > 1)


# ---------------------------------------------------------------------------------------------------
# Advantages: truncated GAE (PPO paper eqs. 11-12, after arXiv 1506.02438)
# ---------------------------------------------------------------------------------------------------


def gae(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor | float,
        gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and returns over a time-major rollout.

    Args:
        rewards: r_t, shape ``[T]`` or ``[T, N]`` (N parallel environments).
        values: V(s_t), same shape.
        dones: 1 where the episode *ended at* step t (r_t was its last reward), same shape. Note that
            CleanRL's ``dones[t]`` marks the reverse (s_t starts a new episode); here it is the step
            that ends one, so no separate ``next_done`` is needed.
        last_value: V(s_T), the value of the state after the last step, ``[]`` or ``[N]``; it
            bootstraps the rollout unless ``dones[T-1]`` is set.
        gamma: discount γ.
        lam: GAE's λ.

    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``; ``returns = advantages + values`` is
        the λ-return, the value target.
    """
    values = values.to(rewards.dtype)
    not_done = 1.0 - dones.to(rewards.dtype)
    next_value = torch.as_tensor(last_value, dtype=rewards.dtype, device=rewards.device).expand_as(values[0])
    advantages = []
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        # eq. 12, TD error: δ_t = r_t + γ V(s_{t+1}) (1 - done_t) - V(s_t)
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        # eq. 11, Â_t = δ_t + (γλ) δ_{t+1} + ..., summed backwards: Â_t = δ_t + γλ (1 - done_t) Â_{t+1}
        running = delta + gamma * lam * not_done[t] * running
        advantages.append(running)
        next_value = values[t]
    advantages_t = torch.stack(advantages[::-1])
    return advantages_t, advantages_t + values


def gae_episode(rewards: Tensor, values: Tensor, gamma: float, lam: float, terminal: bool = True,
                last_value: float = 0.0) -> tuple[Tensor, Tensor]:
    """GAE over one episode ``[T]`` (ragged batches: call once per episode).

    Typical rSIM use: the reward is all on the last step (``rewards = [0, ..., 0, R]``), per planner
    decision or per reasoner token. If ``terminal``, the value after the last step is 0; otherwise the
    episode was cut short and ``last_value`` bootstraps it.

    A right-padded batch ``[B, T]`` can instead go through :func:`gae` in one call: transpose to
    ``[T, B]`` and set ``dones`` at each sequence's last real step, so padding never leaks backwards.
    """
    dones = torch.zeros_like(rewards)
    dones[-1] = float(terminal)
    return gae(rewards, values, dones, last_value, gamma, lam)


# ---------------------------------------------------------------------------------------------------
# Losses, in CleanRL's order: ratio, clipped surrogate (eq. 7), value loss, entropy, total (eq. 9)
# ---------------------------------------------------------------------------------------------------


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_low: float, clip_high: float) -> Tensor:
    """Per-step negated clipped surrogate, eq. 7: -min(ρ Â, clip(ρ, 1 - ε_low, 1 + ε_high) Â).

    The min makes the objective pessimistic: once the ratio has moved past the clip in the direction
    the advantage favours, the clipped branch is chosen and the gradient is zero.
    """
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    return -torch.min(unclipped, clipped)


def ppo_policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor | None = None,
                    clip_coef: float = 0.2) -> Tensor:
    """Clipped surrogate policy loss (PPO eq. 7, negated for minimisation), mean over unmasked steps.

    ``logp`` is log π_θ(a_t|s_t) with gradient, ``old_logp`` the same under the policy that sampled.
    """
    # float32: bfloat16 log-probs make exp(log-ratio) too coarse near the clip
    logp, old_logp, advantages = (zero_masked(x.float(), mask) for x in (logp, old_logp, advantages))
    # probability ratio: ρ_t(θ) = π_θ(a_t|s_t) / π_θold(a_t|s_t) = exp(log π_θ - log π_θold)
    ratio = torch.exp(logp - old_logp)
    # L^CLIP (eq. 7), negated
    return masked_mean(clipped_surrogate(ratio, advantages, clip_coef, clip_coef), mask)


def ppo_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor | None = None,
                   clip_coef: float = 0.2, clip_vloss: bool = True) -> Tensor:
    """Value loss L^VF = ½ (V_θ(s_t) - V_t^targ)², optionally clipped around the old value.

    Clipped form (OpenAI baselines, CleanRL): ½ max((V - R)², (V_old + clip(V - V_old, -ε, ε) - R)²).
    """
    values, old_values, returns = (zero_masked(x, mask) for x in (values, old_values, returns))
    unclipped = (values - returns) ** 2
    if not clip_vloss:
        return 0.5 * masked_mean(unclipped, mask)
    clipped_values = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
    clipped = (clipped_values - returns) ** 2
    return 0.5 * masked_mean(torch.max(unclipped, clipped), mask)


def entropy_bonus(entropy: Tensor, mask: Tensor | None = None) -> Tensor:
    """S[π_θ](s_t) of eq. 9: the policy's entropy, mean over unmasked steps."""
    return masked_mean(entropy, mask)


def ppo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, values: Tensor, old_values: Tensor,
             returns: Tensor, entropy: Tensor, mask: Tensor | None = None, *,
             config: PPOConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO objective (eq. 9, negated): L = L^CLIP + c1 L^VF - c2 S, in CleanRL's order.

    All tensors share one shape (``[N]``, ``[B, T]``, ...). ``values`` carries the gradient of the
    value head; ``old_values``, ``returns`` and ``advantages`` come from the rollout (see :func:`gae`).

    Returns the scalar loss and detached stats: ``policy_loss``, ``value_loss``, ``entropy``,
    ``approx_kl`` (k3 estimate of KL(π_old || π_θ), as in CleanRL) and ``clip_fraction`` (share of
    steps with |ρ - 1| > ε).
    """
    if config.norm_adv:
        # advantage normalisation, per minibatch (CleanRL); the std uses Bessel's correction
        advantages = (advantages - masked_mean(advantages, mask)) / (masked_std(advantages, mask) + 1e-8)
    policy_loss = ppo_policy_loss(logp, old_logp, advantages, mask, config.clip_coef)
    value_loss = ppo_value_loss(values, old_values, returns, mask, config.clip_coef, config.clip_vloss)
    entropy_mean = entropy_bonus(entropy, mask)
    # eq. 9: maximise L^CLIP - c1 L^VF + c2 S  <=>  minimise the line below
    loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy_mean
    with torch.no_grad():
        log_ratio = zero_masked(logp, mask) - zero_masked(old_logp, mask)
        ratio = log_ratio.exp()
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": masked_mean((ratio - 1) - log_ratio, mask),
            "clip_fraction": masked_mean(((ratio - 1.0).abs() > config.clip_coef).float(), mask),
        }
    return loss, stats


# ---------------------------------------------------------------------------------------------------
# Value head
# ---------------------------------------------------------------------------------------------------


class ValueHead(nn.Module):
    """V(s): a linear map from a hidden state to a scalar value.

    Put it on an LLM's last hidden states: per token for the reasoner (``[B, T, H] -> [B, T, 1]``) or
    per decision for the planner (``[B, H] -> [B, 1]``). Like TRL's value head the output keeps a
    trailing dimension of 1; ``.squeeze(-1)`` it. The head computes in its own dtype (float32 by
    default) whatever the model's, and its bias starts at 0 so initial values are centred.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype))
