"""PPO's GAE, losses and value head against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from agents.algorithms.ppo import (  # noqa: E402
    PPOConfig,
    ValueHead,
    entropy_bonus,
    gae,
    gae_episode,
    ppo_loss,
    ppo_policy_loss,
    ppo_value_loss,
)

# A 3-step rollout with γ = λ = 0.5 (so γλ = 0.25) and V(s_3) = 2 after the last step.
REWARDS = torch.tensor([1.0, 0.0, 2.0])
VALUES = torch.tensor([0.5, 1.0, 0.5])


def test_gae_by_hand_without_episode_end():
    # δ_2 = 2 + 0.5·2   - 0.5 =  2.5     Â_2 = 2.5
    # δ_1 = 0 + 0.5·0.5 - 1.0 = -0.75    Â_1 = -0.75 + 0.25·2.5    = -0.125
    # δ_0 = 1 + 0.5·1.0 - 0.5 =  1.0     Â_0 =  1.0  + 0.25·-0.125 =  0.96875
    advantages, returns = gae(REWARDS, VALUES, torch.zeros(3), 2.0, gamma=0.5, lam=0.5)
    assert advantages.tolist() == pytest.approx([0.96875, -0.125, 2.5])
    assert returns.tolist() == pytest.approx([1.46875, 0.875, 3.0])  # Â + V


def test_gae_by_hand_with_an_episode_ending_mid_rollout():
    # the episode ends at step 1: step 1 neither bootstraps from V(s_2) nor inherits Â_2
    # δ_2 = 2.5, Â_2 = 2.5 (a new episode, bootstrapped by V(s_3) = 2)
    # δ_1 = 0 - 1.0 = -1.0,             Â_1 = -1.0
    # δ_0 = 1 + 0.5·1.0 - 0.5 = 1.0,    Â_0 = 1.0 + 0.25·-1.0 = 0.75
    advantages, returns = gae(REWARDS, VALUES, torch.tensor([0.0, 1.0, 0.0]), 2.0, gamma=0.5, lam=0.5)
    assert advantages.tolist() == pytest.approx([0.75, -1.0, 2.5])
    assert returns.tolist() == pytest.approx([1.25, 0.0, 3.0])


def test_gae_ignores_the_bootstrap_after_a_final_done():
    # done at the last step: δ_2 = 2 - 0.5 = 1.5 whatever V(s_3) is
    advantages, _ = gae(REWARDS, VALUES, torch.tensor([0.0, 0.0, 1.0]), 99.0, gamma=0.5, lam=0.5)
    assert advantages[2].item() == pytest.approx(1.5)


def test_gae_runs_environments_side_by_side():
    # [T, N]: column 0 is the no-done rollout above, column 1 the mid-rollout done
    rewards = torch.stack([REWARDS, REWARDS], dim=1)
    values = torch.stack([VALUES, VALUES], dim=1)
    dones = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    advantages, _ = gae(rewards, values, dones, torch.tensor([2.0, 2.0]), gamma=0.5, lam=0.5)
    assert advantages[:, 0].tolist() == pytest.approx([0.96875, -0.125, 2.5])
    assert advantages[:, 1].tolist() == pytest.approx([0.75, -1.0, 2.5])


def test_gae_episode_with_a_terminal_reward_by_hand():
    # rSIM's shape: reward 1 only at the end; V = 0.5 everywhere; γ = λ = 0.5
    rewards, values = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5, 0.5, 0.5])
    # terminal, V after the end = 0:
    #   δ_2 = 1 - 0.5 = 0.5; δ_1 = δ_0 = 0 + 0.5·0.5 - 0.5 = -0.25
    #   Â_2 = 0.5; Â_1 = -0.25 + 0.25·0.5 = -0.125; Â_0 = -0.25 + 0.25·-0.125 = -0.28125
    advantages, returns = gae_episode(rewards, values, 0.5, 0.5)
    assert advantages.tolist() == pytest.approx([-0.28125, -0.125, 0.5])
    assert returns.tolist() == pytest.approx([0.21875, 0.375, 1.0])
    # a terminal episode never bootstraps, whatever last_value says
    assert gae_episode(rewards, values, 0.5, 0.5, last_value=99.0)[0].tolist() == pytest.approx(advantages.tolist())
    # truncated, bootstrapped with V = 2: δ_2 = 1 + 0.5·2 - 0.5 = 1.5
    #   Â_2 = 1.5; Â_1 = -0.25 + 0.25·1.5 = 0.125; Â_0 = -0.25 + 0.25·0.125 = -0.21875
    advantages, _ = gae_episode(rewards, values, 0.5, 0.5, terminal=False, last_value=2.0)
    assert advantages.tolist() == pytest.approx([-0.21875, 0.125, 1.5])


def test_a_padded_batch_through_gae_matches_gae_episode_per_episode():
    # two episodes of lengths 3 and 2, right-padded to [B=2, T=3]; dones mark each last real step
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 3.0, 7.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    dones = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    advantages, _ = gae(rewards.T, values.T, dones.T, torch.zeros(2), gamma=0.9, lam=0.8)
    for i, length in enumerate([3, 2]):
        expected, _ = gae_episode(rewards[i, :length], values[i, :length], 0.9, 0.8)
        assert advantages.T[i, :length].tolist() == pytest.approx(expected.tolist())


# Five steps: ratios [1.5, 0.5, 0.5, 1.5, 1.1] with advantages [1, -1, 1, -1, 2], ε = 0.2.
RATIOS = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.1])
ADV = torch.tensor([1.0, -1.0, 1.0, -1.0, 2.0])
OLD = torch.full((5,), -1.0)
# -min(ρÂ, clip(ρ, 0.8, 1.2)Â):
#   1.5, +1: -min(1.5, 1.2)   = -1.2  (clipped: no incentive to push further)
#   0.5, -1: -min(-0.5, -0.8) =  0.8  (clipped)
#   0.5, +1: -min(0.5, 0.8)   = -0.5  (unclipped: the pessimistic bound keeps the loss)
#   1.5, -1: -min(-1.5, -1.2) =  1.5  (unclipped)
#   1.1, +2: -min(2.2, 2.2)   = -2.2
# mean = (-1.2 + 0.8 - 0.5 + 1.5 - 2.2) / 5 = -1.6 / 5 = -0.32
POLICY_LOSS = -0.32


def test_ppo_policy_loss_by_hand():
    logp = OLD + torch.log(RATIOS)
    assert ppo_policy_loss(logp, OLD, ADV, clip_coef=0.2).item() == pytest.approx(POLICY_LOSS)
    # masking the last step: (-1.2 + 0.8 - 0.5 + 1.5) / 4 = 0.15
    mask = torch.tensor([1, 1, 1, 1, 0], dtype=torch.bool)
    assert ppo_policy_loss(logp, OLD, ADV, mask, clip_coef=0.2).item() == pytest.approx(0.15)


def test_ppo_policy_gradient_is_zero_where_clipped():
    logp = (OLD + torch.log(RATIOS)).requires_grad_(True)
    ppo_policy_loss(logp, OLD, ADV, clip_coef=0.2).backward()
    # clipped steps 0 and 1 get nothing; the others d(-ρÂ)/d log π = -ρÂ, over 5 steps
    assert logp.grad.tolist() == pytest.approx([0.0, 0.0, -0.5 / 5, 1.5 / 5, -2.2 / 5])


# Values [2.0, 0.0, 1.1, 1.0, 1.0], old values 1.0, returns [3, 3, 0, 1, 1], ε = 0.2:
#   V=2.0: unclipped (2 - 3)² = 1;    clipped V = 1.2, (1.2 - 3)² = 3.24 -> max 3.24
#   V=0.0: unclipped (0 - 3)² = 9;    clipped V = 0.8, (0.8 - 3)² = 4.84 -> max 9
#   V=1.1: within the clip: (1.1 - 0)² = 1.21 both ways
#   V=1.0: 0 both ways (twice)
VALUES5 = torch.tensor([2.0, 0.0, 1.1, 1.0, 1.0])
OLD_VALUES5 = torch.ones(5)
RETURNS5 = torch.tensor([3.0, 3.0, 0.0, 1.0, 1.0])
VALUE_LOSS = 0.5 * (3.24 + 9 + 1.21) / 5  # 1.345


def test_ppo_value_loss_clipped_and_unclipped_by_hand():
    clipped = ppo_value_loss(VALUES5, OLD_VALUES5, RETURNS5, clip_coef=0.2, clip_vloss=True)
    assert clipped.item() == pytest.approx(VALUE_LOSS)
    unclipped = ppo_value_loss(VALUES5, OLD_VALUES5, RETURNS5, clip_coef=0.2, clip_vloss=False)
    assert unclipped.item() == pytest.approx(0.5 * (1 + 9 + 1.21) / 5)  # 1.121
    # only the first two steps: 0.5 · (3.24 + 9) / 2 = 3.06
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])
    assert ppo_value_loss(VALUES5, OLD_VALUES5, RETURNS5, mask, clip_coef=0.2).item() == pytest.approx(3.06)


def test_entropy_bonus_is_the_masked_mean():
    entropy = torch.tensor([[1.0, 2.0], [3.0, float("nan")]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert entropy_bonus(entropy, mask).item() == pytest.approx(2.0)  # (1 + 2 + 3) / 3


def test_ppo_loss_combines_the_terms_in_eq9_by_hand():
    config = PPOConfig(norm_adv=False)
    logp = OLD + torch.log(RATIOS)
    entropy = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5])  # mean 1.5
    loss, stats = ppo_loss(logp, OLD, ADV, VALUES5, OLD_VALUES5, RETURNS5, entropy, config=config)
    # L = L^CLIP + c1 L^VF - c2 S = -0.32 + 0.5·1.345 - 0.01·1.5 = 0.3375
    assert loss.item() == pytest.approx(POLICY_LOSS + 0.5 * VALUE_LOSS - 0.01 * 1.5)
    assert loss.item() == pytest.approx(0.3375)
    assert stats["policy_loss"].item() == pytest.approx(POLICY_LOSS)
    assert stats["value_loss"].item() == pytest.approx(VALUE_LOSS)
    assert stats["entropy"].item() == pytest.approx(1.5)
    # |ρ - 1| > 0.2 for 1.5, 0.5, 0.5, 1.5 but not 1.1
    assert stats["clip_fraction"].item() == pytest.approx(4 / 5)
    # CleanRL's approx_kl: mean of (ρ - 1) - ln ρ
    expected_kl = sum((r - 1) - math.log(r) for r in [1.5, 0.5, 0.5, 1.5, 1.1]) / 5
    assert stats["approx_kl"].item() == pytest.approx(expected_kl)


def test_advantage_normalisation_uses_only_unmasked_steps():
    # advantages [1, 2, 3] (+ a masked 100): mean 2, unbiased std 1 -> [-1, 0, 1]
    # ratios [1.1, 1, 1] stay inside the clip: L^CLIP = -(1.1·-1 + 0 + 1·1) / 3 = 0.1 / 3
    config = PPOConfig(norm_adv=True, vf_coef=0.0, ent_coef=0.0)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.1, 1.0, 1.0, 1.0]))
    zeros = torch.zeros(4)
    loss, _ = ppo_loss(logp, old, torch.tensor([1.0, 2.0, 3.0, 100.0]), zeros, zeros, zeros, zeros, mask,
                       config=config)
    assert loss.item() == pytest.approx(0.1 / 3, abs=1e-6)


def test_ppo_loss_gives_masked_steps_exactly_zero_gradient():
    logp = torch.tensor([[-1.0, -2.0, float("nan")]], requires_grad=True)
    values = torch.tensor([[0.5, 0.2, float("nan")]], requires_grad=True)
    entropy = torch.tensor([[1.0, 1.0, float("inf")]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    old_values = torch.tensor([[0.4, 0.1, float("nan")]])  # within the value clip, so values get a gradient
    loss, _ = ppo_loss(logp, torch.tensor([[-1.1, -1.9, -float("inf")]]), torch.tensor([[1.0, -1.0, float("nan")]]),
                       values, old_values, torch.tensor([[1.0, 0.0, float("nan")]]), entropy, mask, config=PPOConfig())
    loss.backward()
    assert torch.isfinite(loss)
    for tensor in (logp, values, entropy):
        assert tensor.grad[0, 2].item() == 0.0
        assert torch.all(tensor.grad[0, :2] != 0)


def test_one_adam_step_lowers_the_ppo_loss_on_a_toy_categorical_policy():
    torch.manual_seed(0)
    states, actions_n, steps = 4, 3, 16
    logits = torch.nn.Parameter(0.1 * torch.randn(states, actions_n))
    value_table = torch.nn.Parameter(torch.zeros(states))
    state = torch.randint(states, (steps,))
    with torch.no_grad():
        dist = torch.distributions.Categorical(logits=logits[state])
        action = dist.sample()
        old_logp = dist.log_prob(action)
        old_values = value_table[state].clone()
        rewards = (action == state % actions_n).float()  # the "right" action depends on the state
        dones = torch.zeros(steps)
        dones[7] = dones[15] = 1.0                          # two episodes of 8 steps
        advantages, returns = gae(rewards, old_values, dones, 0.0, gamma=0.99, lam=0.95)
    optimizer = torch.optim.Adam([logits, value_table], lr=0.05)

    def loss_now() -> torch.Tensor:
        dist = torch.distributions.Categorical(logits=logits[state])
        return ppo_loss(dist.log_prob(action), old_logp, advantages, value_table[state], old_values, returns,
                        dist.entropy(), config=PPOConfig())[0]

    before = loss_now()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert loss_now().item() < before.item()


def test_value_head_maps_hidden_states_to_one_value_each():
    head = ValueHead(8)
    assert head.linear.bias.item() == 0.0
    # zero-initialised bias: a zero hidden state has value exactly 0
    assert head(torch.zeros(2, 8)).tolist() == [[0.0], [0.0]]
    # per token on an LLM's bfloat16 hidden states [B, T, H] -> float32 [B, T, 1]
    out = head(torch.randn(2, 5, 8, dtype=torch.bfloat16))
    assert out.shape == (2, 5, 1) and out.dtype == torch.float32


def test_config_follows_cleanrl_defaults():
    config = PPOConfig()
    assert (config.gamma, config.gae_lambda, config.clip_coef, config.clip_vloss) == (0.99, 0.95, 0.2, True)
    assert (config.vf_coef, config.ent_coef, config.norm_adv, config.max_grad_norm) == (0.5, 0.01, True, 0.5)
    assert config.minibatch_size(512) == 128 and config.minibatch_size(2) == 1
