"""GRPO: group-relative advantages and the clipped surrogate, without a value function.

Group Relative Policy Optimization (DeepSeekMath, Shao et al. 2024, arXiv 2402.03300): sample a
group of G completions per prompt, score them, and use each reward's distance from its group's mean
as the advantage of every token of that completion. The loss is PPO's clipped surrogate plus an
optional KL penalty to a frozen reference policy (eq. 3). Variants from later papers are options:

- DAPO (Yu et al. 2025, arXiv 2503.14476): token-level aggregation and a separate upper clip
  ``epsilon_high`` ("clip-higher");
- Dr. GRPO (Liu et al. 2025, arXiv 2503.20783): no std scaling and a constant normaliser, which
  remove the length and difficulty biases of eq. 3's 1/|o_i| and 1/std;
- GSPO (Zheng et al. 2025, arXiv 2507.18071): one importance ratio per sequence.

Names and defaults follow TRL's ``GRPOConfig`` where the meaning is the same, so numbers can be
cross-checked against TRL. Everything here is a pure function over tensors; generation, reward
scoring and the optimizer step live in the trainer.

Shapes: ``B`` completions (``B = groups x num_generations``, each group contiguous), ``T`` tokens.
Token tensors are right-padded ``[B, T]`` with a loss mask that is 1 only on tokens the policy
generated (prompts, padding and injected strategy text are 0). A planner's decisions are the same
thing with ``T`` = decisions per episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from agents.algorithms.ppo import clipped_surrogate, masked_mean, masked_std, zero_masked

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")


@dataclass
class GRPOConfig:
    """GRPO hyper-parameters; names and defaults follow TRL's ``GRPOConfig``."""

    num_generations: int = 8
    """G: completions sampled per prompt; the group whose mean reward is the baseline."""
    max_completion_length: int = 256
    """Most tokens per completion; also the constant normaliser of ``loss_type="dr_grpo"``."""
    temperature: float = 1.0
    """Sampling temperature; log-probs for the ratio must be recomputed from logits divided by it."""
    learning_rate: float = 1e-6
    """Adam(W) learning rate (TRL's default for GRPO)."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip before each optimizer step (the transformers default TRL inherits)."""
    beta: float = 0.0
    """β, the KL weight of eq. 3; TRL's default 0.0 needs no reference model (DeepSeek-R1 used 0.001)."""
    num_iterations: int = 1
    """μ: gradient steps on each generated batch; with 1, the ratio is 1 and the clip never binds."""
    epsilon: float = 0.2
    """ε (lower clip): the ratio is clipped below at 1 - ε."""
    epsilon_high: float | None = None
    """ε_high: the ratio is clipped above at 1 + ε_high (DAPO's clip-higher uses 0.28); None: ``epsilon``."""
    importance_sampling_level: str = "token"
    """``token``: a ratio per token (eq. 3); ``sequence``: one per completion, exp(mean token log-ratio) (GSPO)."""
    scale_rewards: str = "group"
    """Divide advantages by the ``group``'s reward std (eq. 3), the ``batch``'s, or ``none`` (Dr. GRPO)."""
    loss_type: str = "dapo"
    """How token losses become one number: ``grpo``, ``bnpo``, ``dr_grpo``, ``dapo``; see :func:`aggregate_loss`."""

    def __post_init__(self) -> None:
        # TRL also accepts booleans: True means "group", False means "none"
        if isinstance(self.scale_rewards, bool):
            self.scale_rewards = "group" if self.scale_rewards else "none"
        _check_choice("loss_type", self.loss_type, LOSS_TYPES)
        _check_choice("scale_rewards", self.scale_rewards, SCALE_REWARDS)
        _check_choice("importance_sampling_level", self.importance_sampling_level, IMPORTANCE_SAMPLING_LEVELS)

    @property
    def clip_high(self) -> float:
        """The upper clip width actually used: ``epsilon_high``, or ``epsilon`` when that is None."""
        return self.epsilon if self.epsilon_high is None else self.epsilon_high


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"GRPOConfig.{name} must be one of {', '.join(choices)}; got {value!r}")


# ---------------------------------------------------------------------------------------------------
# Advantages (DeepSeekMath §4.1.2, outcome supervision)
# ---------------------------------------------------------------------------------------------------


def group_advantages(rewards: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4,
                     valid: Tensor | None = None) -> Tensor:
    """Group-relative advantages, one per completion: Â_i = (r_i - mean(r_group)) / (std + eps).

    Args:
        rewards: ``[B]`` rewards, ``B`` a multiple of ``group_size``, each group contiguous.
        group_size: G, completions per prompt (``num_generations``).
        scale: ``group`` divides by the group's std (DeepSeekMath), ``batch`` by the std of all
            valid rewards in the batch (PPO-Lite), ``none`` does not divide (Dr. GRPO). The mean is
            always the group's. Stds are unbiased (n - 1), as ``torch.std`` and TRL compute them.
        eps: added to the std so a group of equal rewards gets advantage 0, not NaN (TRL's 1e-4).
        valid: ``[B]`` bool, False for unscored completions; by default the rewards that are not
            NaN. Invalid completions get advantage 0 and are left out of every mean and std.

    Returns:
        ``[B]`` advantages; broadcast them over each completion's tokens (Â_{i,t} = Â_i).
    """
    if scale not in SCALE_REWARDS:
        raise ValueError(f"scale must be one of {', '.join(SCALE_REWARDS)}; got {scale!r}")
    if rewards.ndim != 1 or rewards.shape[0] % group_size:
        raise ValueError(f"rewards must be 1-D with a length divisible by group_size={group_size}; "
                         f"got shape {tuple(rewards.shape)}")
    rewards = rewards.float()
    if valid is None:
        valid = ~torch.isnan(rewards)
    valid = valid.bool()
    r = torch.where(valid, rewards, torch.zeros_like(rewards)).view(-1, group_size)
    v = valid.view(-1, group_size).float()
    count = v.sum(dim=1, keepdim=True)
    # baseline: mean(r) over the group's scored completions
    mean = (r * v).sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = (r - mean) * v
    if scale == "group":
        # std(r) within each group, unbiased; 0 for a group with fewer than two scored completions
        std = ((centred ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()
    elif scale == "batch":
        # std over every scored completion of the batch
        std = masked_std(rewards, valid)
    else:
        return centred.view(-1)
    return (centred / (std + eps)).view(-1)


# ---------------------------------------------------------------------------------------------------
# KL to the reference policy (DeepSeekMath eq. 4)
# ---------------------------------------------------------------------------------------------------


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token KL(π_θ || π_ref) estimate (Schulman's k3): π_ref/π_θ - log(π_ref/π_θ) - 1.

    Unbiased for tokens sampled from π_θ and never negative.
    """
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


# ---------------------------------------------------------------------------------------------------
# The loss (DeepSeekMath eq. 3, with DAPO / Dr. GRPO aggregation and GSPO sequence ratios)
# ---------------------------------------------------------------------------------------------------


def aggregate_loss(token_loss: Tensor, mask: Tensor, loss_type: str, max_completion_length: int,
                   num_active_tokens: float | None = None) -> Tensor:
    """Reduce per-token losses ``[B, T]`` to a scalar; ``|o_i|`` is completion i's unmasked length.

    - ``grpo`` (eq. 3):  1/B Σ_i 1/|o_i| Σ_t ℓ_{i,t}  (mean per sequence, then over sequences)
    - ``bnpo``:          Σ_i Σ_t ℓ_{i,t} / Σ_i |o_i|  (token-level mean over this batch)
    - ``dapo`` (DAPO's token-level loss): as ``bnpo``, but divided by ``num_active_tokens`` when it
      is given, the unmasked tokens of the whole accumulated batch, so micro-batches add up to one
      token-level mean
    - ``dr_grpo``:       Σ_i Σ_t ℓ_{i,t} / (B · max_completion_length)  (a constant normaliser)
    """
    mask = mask.bool()
    masked = zero_masked(token_loss, mask)
    if loss_type == "grpo":
        return (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    if loss_type == "bnpo" or (loss_type == "dapo" and num_active_tokens is None):
        return masked.sum() / mask.sum().clamp(min=1)
    if loss_type == "dapo":
        return masked.sum() / max(float(num_active_tokens), 1.0)
    if loss_type == "dr_grpo":
        return masked.sum() / (token_loss.shape[0] * max_completion_length)
    raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}; got {loss_type!r}")


def grpo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
              ref_logp: Tensor | None = None, config: GRPOConfig,
              num_active_tokens: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The GRPO loss, eq. 3 negated for minimisation, aggregated per ``config.loss_type``.

    Args:
        logp: ``[B, T]`` log π_θ(o_{i,t} | q, o_{i,<t}), with gradient.
        old_logp: ``[B, T]`` the same under π_θold, the policy that sampled (no gradient).
        advantages: ``[B]`` from :func:`group_advantages` (broadcast per token), or ``[B, T]``.
        mask: ``[B, T]`` bool or float; 0 on prompts, padding and injected text. Masked positions
            get exactly zero gradient, and NaN or -inf there is harmless.
        ref_logp: ``[B, T]`` log π_ref, needed when ``config.beta > 0``.
        config: clip widths, β, aggregation and ratio level.
        num_active_tokens: for ``dapo`` with gradient accumulation, the unmasked tokens of the whole
            accumulated batch (see :func:`aggregate_loss`).

    Returns:
        The scalar loss and detached stats: ``clip_ratio/low`` (share of tokens whose ratio fell
        below 1 - ε with Â < 0, so the clip removed their gradient), ``clip_ratio/high`` (above
        1 + ε_high with Â > 0), ``clip_ratio`` (either), ``ratio`` (mean ρ), ``kl`` (mean k3, 0
        without a reference) and ``advantage`` (mean Â); all are means over unmasked tokens.
    """
    if config.beta > 0 and ref_logp is None:
        raise ValueError("grpo_loss needs ref_logp when config.beta > 0 (the KL term); pass the "
                         "reference policy's log-probs or set beta=0")
    mask = mask.bool()
    if advantages.ndim == 1:
        advantages = advantages.unsqueeze(1)  # Â_{i,t} = Â_i for every token t
    # padding may hold NaN or -inf: zero it before any arithmetic so it cannot reach the gradient;
    # compute in float32, since bfloat16 log-probs make exp(log-ratio) too coarse near the clip
    logp = zero_masked(logp.float(), mask)
    old_logp = zero_masked(old_logp.to(logp.dtype), mask)
    advantages = zero_masked(advantages.to(logp.dtype).expand_as(logp), mask)

    # importance ratio r_{i,t}(θ) = π_θ(o_{i,t}|q,o_{i,<t}) / π_θold(o_{i,t}|q,o_{i,<t})
    log_ratio = logp - old_logp
    if config.importance_sampling_level == "sequence":
        # GSPO: s_i(θ) = exp(1/|o_i| Σ_t log r_{i,t}), one ratio shared by all tokens of completion i
        lengths = mask.sum(dim=1, keepdim=True).clamp(min=1)
        log_ratio = (log_ratio.sum(dim=1, keepdim=True) / lengths).expand_as(logp)
    ratio = torch.exp(log_ratio)

    # eq. 3, inner term: min(r Â, clip(r, 1 - ε, 1 + ε_high) Â), negated
    token_loss = clipped_surrogate(ratio, advantages, config.epsilon, config.clip_high)

    # eq. 3, KL penalty: + β D_KL[π_θ || π_ref] per token (eq. 4)
    kl = None
    if ref_logp is not None:
        kl = kl_k3(logp, zero_masked(ref_logp.to(logp.dtype), mask))
        if config.beta > 0:
            token_loss = token_loss + config.beta * kl

    # eq. 3, outer sums: 1/G Σ_i 1/|o_i| Σ_t, or the DAPO / Dr. GRPO alternatives
    loss = aggregate_loss(token_loss, mask, config.loss_type, config.max_completion_length, num_active_tokens)

    with torch.no_grad():
        clipped_low = (ratio < 1.0 - config.epsilon) & (advantages < 0)
        clipped_high = (ratio > 1.0 + config.clip_high) & (advantages > 0)
        stats = {
            "clip_ratio/low": masked_mean(clipped_low.float(), mask),
            "clip_ratio/high": masked_mean(clipped_high.float(), mask),
            "clip_ratio": masked_mean((clipped_low | clipped_high).float(), mask),
            "ratio": masked_mean(ratio, mask),
            "kl": masked_mean(kl, mask) if kl is not None else torch.zeros(()),
            "advantage": masked_mean(advantages, mask),
        }
    return loss, stats
