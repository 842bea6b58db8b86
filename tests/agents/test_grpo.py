"""GRPO's advantages, KL and loss against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import ast
import inspect
import itertools
import math
import textwrap

import pytest

torch = pytest.importorskip("torch")

from agents.algorithms.grpo import GRPOConfig, aggregate_loss, group_advantages, grpo_loss, kl_k3  # noqa: E402
from agents.algorithms.ppo import PPOConfig  # noqa: E402

EPS = 1e-4  # TRL's std epsilon, group_advantages' default

# Two groups of three. Group A = [0, 3, 6]; group B = [2, unscored, 4].
REWARDS = torch.tensor([0.0, 3.0, 6.0, 2.0, float("nan"), 4.0])


def test_group_advantages_divide_by_the_group_std():
    # A: mean 3, deviations [-3, 0, 3], unbiased var (9 + 0 + 9) / 2 = 9, std 3
    # B: the NaN is left out: mean of [2, 4] = 3, deviations [-1, 1], var (1 + 1) / 1 = 2, std √2
    expected = [-3 / (3 + EPS), 0.0, 3 / (3 + EPS), -1 / (math.sqrt(2) + EPS), 0.0, 1 / (math.sqrt(2) + EPS)]
    assert group_advantages(REWARDS, 3, scale="group").tolist() == pytest.approx(expected, abs=1e-6)


def test_group_advantages_divide_by_the_batch_std():
    # group means as before (3 and 3); batch std over the five scored rewards [0, 3, 6, 2, 4]:
    # mean 3, squared deviations 9 + 0 + 9 + 1 + 1 = 20, unbiased var 20 / 4 = 5, std √5
    s = math.sqrt(5) + EPS
    expected = [-3 / s, 0.0, 3 / s, -1 / s, 0.0, 1 / s]
    assert group_advantages(REWARDS, 3, scale="batch").tolist() == pytest.approx(expected, abs=1e-6)


def test_group_advantages_unscaled_are_reward_minus_group_mean():
    # A: [0, 3, 6] - 3; B: [2, -, 4] - 3
    assert group_advantages(REWARDS, 3, scale="none").tolist() == pytest.approx([-3, 0, 3, -1, 0, 1])


def test_an_explicitly_invalid_sample_is_excluded_like_a_nan():
    # the same rewards with 0.0 in place of the NaN, marked invalid: the 0 must not pull B's mean to 2
    rewards = torch.tensor([0.0, 3.0, 6.0, 2.0, 0.0, 4.0])
    valid = torch.tensor([True, True, True, True, False, True])
    assert group_advantages(rewards, 3, scale="none", valid=valid).tolist() == pytest.approx([-3, 0, 3, -1, 0, 1])


def test_a_group_of_equal_rewards_has_zero_advantage_not_nan():
    # std 0: (r - mean) / (0 + eps) = 0 / eps = 0; a lone scored sample likewise
    out = group_advantages(torch.tensor([1.0, 1.0, 5.0, float("nan")]), 2)
    assert out.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_group_advantages_reject_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), 2, scale="std")


def test_kl_k3_by_hand():
    logp = torch.log(torch.tensor([0.5, 0.5, 0.3]))
    ref = torch.log(torch.tensor([0.25, 1.0, 0.3]))
    # ref/p = 0.5: 0.5 - ln 0.5 - 1 = 0.5 + 0.693147 - 1 = 0.193147
    # ref/p = 2:   2 - ln 2 - 1 = 0.306853;   ref = p: 1 - 0 - 1 = 0
    assert kl_k3(logp, ref).tolist() == pytest.approx([0.193147, 0.306853, 0.0], abs=1e-6)


# A [2, 3] batch. old log-probs are -1 everywhere; logp = -1 + ln(ratio) sets each ratio.
# Row 0: Â = +1, ratios [1.1, 1.5, 0.5], all tokens trained.
# Row 1: Â = -2, ratios [0.9, 0.5, 1.5], last token masked (e.g. injected strategy text).
RATIOS = torch.tensor([[1.1, 1.5, 0.5], [0.9, 0.5, 1.5]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
ADV = torch.tensor([1.0, -2.0])
OLD = torch.full((2, 3), -1.0)
# Token losses -min(r Â, clip(r, 0.8, 1.2) Â) with ε = 0.2:
#   row 0: r=1.1 -> -min(1.1, 1.1) = -1.1; r=1.5 -> -min(1.5, 1.2) = -1.2 (clipped high);
#          r=0.5 -> -min(0.5, 0.8) = -0.5 (not clipped: the pessimistic min keeps the lower ratio)
#   row 1: r=0.9 -> -min(-1.8, -1.8) = 1.8; r=0.5 -> -min(-1.0, -1.6) = 1.6 (clipped low)
# Sums: row 0 = -2.8 over 3 tokens, row 1 = 3.4 over 2 tokens; all = 0.6 over 5 tokens.
EXPECTED = {
    "grpo": (-2.8 / 3 + 3.4 / 2) / 2,  # mean per sequence, then over sequences = 0.383333
    "bnpo": 0.6 / 5,                   # token mean = 0.12
    "dapo": 0.6 / 5,
    "dr_grpo": 0.6 / (2 * 4),          # B x max_completion_length = 2 x 4 -> 0.075
}


def _logp(ratios: torch.Tensor = RATIOS) -> torch.Tensor:
    return (OLD + torch.log(ratios)).requires_grad_(True)


@pytest.mark.parametrize("loss_type", sorted(EXPECTED))
def test_grpo_loss_by_hand_for_each_aggregation(loss_type):
    config = GRPOConfig(loss_type=loss_type, max_completion_length=4)
    loss, _ = grpo_loss(_logp(), OLD, ADV, MASK, config=config)
    assert loss.item() == pytest.approx(EXPECTED[loss_type], abs=1e-6)


def test_grpo_loss_gradient_is_zero_where_masked_or_clipped():
    logp = _logp()
    # garbage in the masked slot must not matter: NaN log-prob (e.g. a fully masked attention row)
    # and -inf old log-prob
    old = OLD.clone()
    old[1, 2] = -float("inf")
    with torch.no_grad():
        logp[1, 2] = float("nan")
    loss, _ = grpo_loss(logp, old, ADV, MASK.bool(), config=GRPOConfig(loss_type="bnpo"))
    assert torch.isfinite(loss)
    loss.backward()
    grad = logp.grad
    assert grad[1, 2].item() == 0.0                      # masked
    assert grad[0, 1].item() == 0.0                      # r=1.5 > 1.2 with Â>0: clipped
    assert grad[1, 1].item() == 0.0                      # r=0.5 < 0.8 with Â<0: clipped
    # unclipped tokens: d(-r Â)/d logp = -r Â, divided by the 5 tokens of the bnpo mean
    assert grad[0, 0].item() == pytest.approx(-1.1 * 1 / 5)
    assert grad[0, 2].item() == pytest.approx(-0.5 * 1 / 5)
    assert grad[1, 0].item() == pytest.approx(-0.9 * -2 / 5)


def test_grpo_loss_stats_by_hand():
    _, stats = grpo_loss(_logp(), OLD, ADV, MASK, config=GRPOConfig())
    # of the 5 trained tokens: one clipped high (row 0, r=1.5), one clipped low (row 1, r=0.5)
    assert stats["clip_ratio/high"].item() == pytest.approx(1 / 5)
    assert stats["clip_ratio/low"].item() == pytest.approx(1 / 5)
    assert stats["clip_ratio"].item() == pytest.approx(2 / 5)
    assert stats["ratio"].item() == pytest.approx((1.1 + 1.5 + 0.5 + 0.9 + 0.5) / 5)  # 0.9
    assert stats["advantage"].item() == pytest.approx((3 * 1 + 2 * -2) / 5)           # -0.2
    assert stats["kl"].item() == 0.0


def test_epsilon_high_widens_only_the_upper_clip():
    # ε_high = 0.6: r=1.5 with Â=+1 is no longer clipped (-1.5 instead of -1.2); the lower clip
    # stays at 0.8, so row 1 is unchanged. Token sum -1.1 - 1.5 - 0.5 + 1.8 + 1.6 = 0.3, over 5 tokens
    loss, stats = grpo_loss(_logp(), OLD, ADV, MASK, config=GRPOConfig(loss_type="dapo", epsilon_high=0.6))
    assert loss.item() == pytest.approx(0.3 / 5)
    assert stats["clip_ratio/high"].item() == 0.0


def test_beta_adds_the_k3_kl_per_token():
    logp = _logp()
    ref = logp.detach() + math.log(0.5)  # π_ref / π_θ = 0.5 on every token: k3 = 0.193147
    kl = 0.5 + math.log(2) - 1
    for loss_type, base, per_token_kl_weight in [("grpo", EXPECTED["grpo"], 1.0),      # mean of means
                                                 ("dapo", EXPECTED["dapo"], 1.0),      # token mean
                                                 ("dr_grpo", EXPECTED["dr_grpo"], 5 / 8)]:  # 5 tokens / (2 x 4)
        config = GRPOConfig(loss_type=loss_type, beta=0.1, max_completion_length=4)
        loss, stats = grpo_loss(logp, OLD, ADV, MASK, ref_logp=ref, config=config)
        assert loss.item() == pytest.approx(base + 0.1 * kl * per_token_kl_weight, abs=1e-6)
        assert stats["kl"].item() == pytest.approx(kl)


def test_beta_without_a_reference_is_refused():
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(_logp(), OLD, ADV, MASK, config=GRPOConfig(beta=0.1))


def test_bfloat16_log_probs_give_a_float32_loss_and_gradient():
    logp = _logp().detach().bfloat16().requires_grad_(True)
    loss, _ = grpo_loss(logp, OLD.bfloat16(), ADV, MASK, config=GRPOConfig())
    loss.backward()
    assert loss.dtype == torch.float32 and logp.grad.dtype == torch.bfloat16


def test_per_token_advantages_are_accepted():
    per_token = ADV[:, None].expand(2, 3)
    a, _ = grpo_loss(_logp(), OLD, per_token, MASK, config=GRPOConfig())
    b, _ = grpo_loss(_logp(), OLD, ADV, MASK, config=GRPOConfig())
    assert a.item() == pytest.approx(b.item())


def test_sequence_level_importance_sampling_by_hand():
    # GSPO: one ratio per row, exp of the mean token log-ratio over trained tokens
    #   row 0: (1.1 · 1.5 · 0.5)^(1/3) = 0.825^(1/3) = 0.937952; Â=+1 inside the clip: loss -0.937952 per token
    #   row 1: (0.9 · 0.5)^(1/2) = 0.670820 < 0.8 with Â=-2: clipped, -min(-1.341641, -1.6) = 1.6 per token
    # grpo aggregation: (-0.937952 + 1.6) / 2 = 0.331024
    config = GRPOConfig(loss_type="grpo", importance_sampling_level="sequence")
    loss, stats = grpo_loss(_logp(), OLD, ADV, MASK, config=config)
    assert loss.item() == pytest.approx((-(0.825 ** (1 / 3)) + 1.6) / 2, abs=1e-6)
    assert stats["clip_ratio/low"].item() == pytest.approx(2 / 5)  # both trained tokens of row 1
    # mean ratio over the 5 trained tokens: (3 x 0.937952 + 2 x 0.670820) / 5
    assert stats["ratio"].item() == pytest.approx((3 * 0.825 ** (1 / 3) + 2 * 0.45 ** 0.5) / 5, abs=1e-6)


def test_dapo_normalises_by_the_accumulated_token_count():
    # two micro-batches of one row each, 5 tokens in all: their dapo losses add up to the full-batch loss
    config = GRPOConfig(loss_type="dapo")
    full, _ = grpo_loss(_logp(), OLD, ADV, MASK, config=config)
    parts = [grpo_loss(_logp()[i:i + 1], OLD[i:i + 1], ADV[i:i + 1], MASK[i:i + 1], config=config,
                       num_active_tokens=5)[0] for i in range(2)]
    assert (parts[0] + parts[1]).item() == pytest.approx(full.item())  # (-2.8 + 3.4) / 5


def test_sequence_level_ratios_keep_masked_garbage_out_of_the_gradient():
    # one ratio per row couples all its tokens, so NaN advantages and log-probs in a masked slot
    # would reach every token of the row unless they are zeroed first
    logp = _logp()
    with torch.no_grad():
        logp[1, 2] = float("nan")
    advantages = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, float("nan")]])
    config = GRPOConfig(importance_sampling_level="sequence")
    loss, _ = grpo_loss(logp, OLD, advantages, MASK, config=config)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert logp.grad[1, 2].item() == 0.0


@pytest.mark.parametrize("loss_type", sorted(EXPECTED))
def test_aggregate_loss_ignores_nan_in_masked_slots(loss_type):
    # token losses [[1, 2, NaN]] with the NaN masked: grpo/bnpo/dapo mean 1.5, dr_grpo 3 / (1 x 4)
    token_loss = torch.tensor([[1.0, 2.0, float("nan")]])
    loss = aggregate_loss(token_loss, torch.tensor([[1, 1, 0]]), loss_type, max_completion_length=4)
    assert loss.item() == pytest.approx(0.75 if loss_type == "dr_grpo" else 1.5)


def test_aggregate_loss_rejects_an_unknown_loss_type():
    with pytest.raises(ValueError, match="loss_type"):
        aggregate_loss(torch.zeros(1, 1), torch.ones(1, 1), "sum", 4)


def test_config_follows_trl_defaults_and_validates():
    config = GRPOConfig()
    assert (config.num_generations, config.epsilon, config.epsilon_high, config.beta) == (8, 0.2, None, 0.0)
    assert (config.loss_type, config.scale_rewards, config.importance_sampling_level) == ("dapo", "group", "token")
    assert config.clip_high == 0.2 and GRPOConfig(epsilon_high=0.28).clip_high == 0.28
    assert GRPOConfig(scale_rewards=False).scale_rewards == "none"
    with pytest.raises(ValueError, match="loss_type"):
        GRPOConfig(loss_type="ppo")


def test_one_adam_step_on_the_grpo_loss_favours_the_better_completion():
    # a 2-armed bandit, one group of 4 pulls: arm 1 pays 1, arm 0 pays 0
    logits = torch.zeros(2, requires_grad=True)
    actions = torch.tensor([0, 1, 1, 0])
    advantages = group_advantages((actions == 1).float(), 4)  # [-0.866, 0.866, 0.866, -0.866]
    old = torch.log_softmax(logits, -1)[actions].detach()[:, None]
    optimizer = torch.optim.Adam([logits], lr=0.1)

    def loss_now() -> torch.Tensor:
        logp = torch.log_softmax(logits, -1)[actions][:, None]
        return grpo_loss(logp, old, advantages, torch.ones(4, 1), config=GRPOConfig())[0]

    before = loss_now()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert loss_now().item() < before.item()
    assert logits[1] > logits[0]


@pytest.mark.parametrize("config_class", [GRPOConfig, PPOConfig])
def test_every_config_field_has_a_docstring(config_class):
    # rsim documents config fields with the string literal right under each field (CleanRL style)
    body = ast.parse(textwrap.dedent(inspect.getsource(config_class))).body[0].body
    documented = {node.target.id for node, after in itertools.pairwise(body)
                  if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                  and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)}
    assert set(config_class.__dataclass_fields__) == documented
