"""Policy-gradient algorithms as pure functions over tensors: GRPO and PPO, one readable file each.

``grpo.py`` (group-relative advantages, clipped surrogate, KL to a reference; TRL's names) and
``ppo.py`` (GAE, clipped policy and value losses, entropy bonus, value head; CleanRL's names). The
trainer in ``agents.training`` generates, scores and steps optimizers; nothing here does.
"""

from agents.algorithms.grpo import (
    GRPOConfig,
    aggregate_loss,
    group_advantages,
    grpo_loss,
    kl_k3,
)
from agents.algorithms.ppo import (
    PPOConfig,
    ValueHead,
    clipped_surrogate,
    entropy_bonus,
    gae,
    gae_episode,
    masked_mean,
    masked_std,
    ppo_loss,
    ppo_policy_loss,
    ppo_value_loss,
    zero_masked,
)

__all__ = [
    "GRPOConfig",
    "PPOConfig",
    "ValueHead",
    "aggregate_loss",
    "clipped_surrogate",
    "entropy_bonus",
    "gae",
    "gae_episode",
    "group_advantages",
    "grpo_loss",
    "kl_k3",
    "masked_mean",
    "masked_std",
    "ppo_loss",
    "ppo_policy_loss",
    "ppo_value_loss",
    "zero_masked",
]
