"""The transformers reasoner backend on the tiny random model: stopping, batching, KV reuse, log-probs.

Every test drives real forward passes of a real (tiny, random) transformers model with SmolLM2's
real tokenizer. The random model writes gibberish, so stopping rules are tested with delimiters,
answer patterns and end-of-sequence ids chosen from what it actually generates.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.backends import ContextLengthError, GenerationConfig, StepOutput, has_final_answer  # noqa: E402
from agents.backends.transformers_backend import TransformersBackend  # noqa: E402
from agents.models import TINY_RANDOM, resolve_model  # noqa: E402

PROMPTS = {
    0: "Solve step by step.\n\nQuestion: What is 17 + 25?\n\n",
    1: "Hi",
    2: "Solve step by step.\n\nQuestion: A train leaves at 3 pm and travels 120 km at 60 km/h. When does it arrive?\n\n",
    3: "Question: 2 * 3?\n\n",
}
INJECTIONS = ["[strategy: verification] Check the last result.\n", "[strategy: continuation] Go on.\n",
              "[strategy: termination] State the final answer now.\n"]
# No stopping rule but the token cap: every row generates exactly max_new_tokens tokens.
RUN_ON = dict(delimiter=None, stop_at_answer=False, eos_token_ids=())


@pytest.fixture(scope="module")
def model_and_tokenizer():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return resolve_model(TINY_RANDOM)


@pytest.fixture
def make_backend(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    return lambda **kwargs: TransformersBackend(model, tokenizer, **kwargs)


def run_episodes(backend: TransformersBackend, prompts: dict, config: GenerationConfig, steps: int = 3,
                 ) -> dict[int, list[StepOutput]]:
    """Play ``steps`` reasoner turns for all episodes in one batch, injecting a strategy between turns."""
    prompts = dict(prompts)
    history: dict[int, list[StepOutput]] = {key: [] for key in prompts}
    for step in range(steps):
        outputs = backend.generate_step(prompts, config)
        for key, output in outputs.items():
            history[key].append(output)
            # Episodes get injections of different lengths, so the batch is ragged at every step.
            prompts[key] += output.text + INJECTIONS[(key + step) % len(INJECTIONS)]
    return history


def first_new_piece(tokenizer, token_ids: list[int], start: int = 2) -> tuple[int, str]:
    """The first position n >= start whose token adds text that never appeared before it."""
    for n in range(start, len(token_ids)):
        before = tokenizer.decode(token_ids[:n])
        piece = tokenizer.decode(token_ids[:n + 1])[len(before):]
        if piece.strip() and piece not in before:
            return n, piece
    raise AssertionError("the random model produced no new text piece; pick other prompts")


# -- generation equals the references ---------------------------------------------------------------
def test_first_step_equals_model_generate(make_backend, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    config = GenerationConfig(max_new_tokens=12, temperature=0.0, **RUN_ON)
    output = make_backend().generate_step({"q": PROMPTS[2]}, config)["q"]
    input_ids = torch.tensor([tokenizer(PROMPTS[2])["input_ids"]])
    expected = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=12,
                              do_sample=False)[0, input_ids.shape[1]:]
    assert output.token_ids == expected.tolist()
    assert output.stop_reason == "max_tokens"
    assert output.text == tokenizer.decode(output.token_ids)


def test_batch_of_mixed_lengths_equals_each_episode_alone(make_backend, model_and_tokenizer):
    tokenizer = model_and_tokenizer[1]
    probe = make_backend().generate_step(PROMPTS, GenerationConfig(max_new_tokens=10, temperature=0.0, **RUN_ON))
    # Two episodes stop early (at different tokens) so that finished rows ride along masked out and the
    # batch is compacted; their caches must still be right at the next step.
    stops = (probe[0].token_ids[2], probe[3].token_ids[5])
    config = GenerationConfig(max_new_tokens=10, temperature=0.0, delimiter=None, stop_at_answer=False,
                              eos_token_ids=stops)
    batched = run_episodes(make_backend(), PROMPTS, config)
    for key, prompt in PROMPTS.items():
        alone = run_episodes(make_backend(), {key: prompt}, config)[key]
        assert [o.token_ids for o in batched[key]] == [o.token_ids for o in alone], f"episode {key}"
        assert [o.stop_reason for o in batched[key]] == [o.stop_reason for o in alone]
    assert "eos" in {o.stop_reason for outputs in batched.values() for o in outputs}
    assert tokenizer is not None


def test_kv_reuse_gives_the_same_tokens_as_full_reencoding(make_backend):
    config = GenerationConfig(max_new_tokens=8, temperature=0.0, **RUN_ON)
    reused = run_episodes(make_backend(), PROMPTS, config, steps=4)
    reencoded = run_episodes(make_backend(full_reencode=True), PROMPTS, config, steps=4)
    for key in PROMPTS:
        assert [o.token_ids for o in reused[key]] == [o.token_ids for o in reencoded[key]]
        assert [o.prompt_token_ids for o in reused[key]] == [o.prompt_token_ids for o in reencoded[key]]
        for before, after in zip(reused[key], reused[key][1:]):
            # Everything but the last sampled token came from the cache; only the suffix was encoded.
            assert after.cached_tokens == len(before.prompt_token_ids) + len(before.token_ids) - 1
        assert all(o.cached_tokens == 0 for o in reencoded[key])


def test_logprobs_match_a_separate_forward_pass(make_backend, model_and_tokenizer):
    model = model_and_tokenizer[0]
    temperature = 0.7
    config = GenerationConfig(max_new_tokens=8, temperature=temperature, seed=3, **RUN_ON)
    backend = make_backend()
    history = run_episodes(backend, PROMPTS, config)
    for outputs in history.values():
        for output in outputs:
            ids = torch.tensor([output.prompt_token_ids + output.token_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(output.prompt_token_ids) - 1:-1].float()
            expected = torch.log_softmax(logits / temperature, -1).gather(1, ids[0, len(output.prompt_token_ids):, None])
            assert torch.allclose(torch.tensor(output.logprobs), expected.squeeze(1), atol=1e-4)
    last = [outputs[-1] for outputs in history.values()]
    scored = backend.score([o.prompt_token_ids for o in last], [o.token_ids for o in last], temperature=temperature)
    for output, logprobs in zip(last, scored):
        assert torch.allclose(logprobs, torch.tensor(output.logprobs), atol=1e-4)


def test_score_accepts_text(make_backend, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    [logprobs] = make_backend().score(["Question: 2 + 2 ="], [" 4, and then"])
    ids = torch.tensor([tokenizer("Question: 2 + 2 =")["input_ids"] + tokenizer(" 4, and then")["input_ids"]])
    n = len(tokenizer(" 4, and then")["input_ids"])
    with torch.no_grad():
        expected = torch.log_softmax(model(ids).logits[0, -n - 1:-1], -1).gather(1, ids[0, -n:, None]).squeeze(1)
    assert logprobs.shape == (n,) and torch.allclose(logprobs, expected, atol=1e-4)


def test_sampling_with_a_seed_is_reproducible_and_independent_of_the_batch(make_backend):
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=11, **RUN_ON)
    first = run_episodes(make_backend(), PROMPTS, config, steps=2)
    again = run_episodes(make_backend(), PROMPTS, config, steps=2)
    alone = run_episodes(make_backend(), {2: PROMPTS[2]}, config, steps=2)
    other_seed = run_episodes(make_backend(), PROMPTS, dataclasses.replace(config, seed=12), steps=2)
    tokens = lambda history: {k: [o.token_ids for o in v] for k, v in history.items()}  # noqa: E731
    assert tokens(first) == tokens(again)
    assert tokens(alone)[2] == tokens(first)[2]
    assert tokens(other_seed) != tokens(first)
    # Different steps of one episode draw different random numbers.
    assert first[0][0].token_ids != first[0][1].token_ids


def test_top_p_keeps_sampled_tokens_inside_the_nucleus(make_backend, model_and_tokenizer):
    model = model_and_tokenizer[0]
    config = GenerationConfig(max_new_tokens=6, temperature=1.0, top_p=0.05, seed=0, **RUN_ON)
    output = make_backend().generate_step({0: PROMPTS[0]}, config)[0]
    ids = torch.tensor([output.prompt_token_ids + output.token_ids])
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0, len(output.prompt_token_ids) - 1:-1], -1)
    for position, token in enumerate(output.token_ids):
        sorted_probs, order = probs[position].sort(descending=True)
        nucleus = order[: int((sorted_probs.cumsum(0) < 0.05).sum()) + 1]
        assert token in nucleus.tolist()


# -- stopping rules ----------------------------------------------------------------------------------
def test_stops_after_the_token_that_completes_the_delimiter(make_backend, model_and_tokenizer):
    tokenizer = model_and_tokenizer[1]
    free = make_backend().generate_step({0: PROMPTS[0]}, GenerationConfig(max_new_tokens=16, temperature=0.0, **RUN_ON))[0]
    n, piece = first_new_piece(tokenizer, free.token_ids)
    config = GenerationConfig(max_new_tokens=16, temperature=0.0, delimiter=piece, stop_at_answer=False, eos_token_ids=())
    output = make_backend().generate_step({0: PROMPTS[0]}, config)[0]
    assert output.stop_reason == "delimiter"
    assert output.token_ids == free.token_ids[:n + 1]
    assert output.text.endswith(piece) and output.text.count(piece) == 1


def test_stops_at_a_final_answer_before_the_delimiter(make_backend, model_and_tokenizer):
    tokenizer = model_and_tokenizer[1]
    free = make_backend().generate_step({0: PROMPTS[2]}, GenerationConfig(max_new_tokens=16, temperature=0.0, **RUN_ON))[0]
    n, piece = first_new_piece(tokenizer, free.token_ids)
    # The same token completes both an "answer" and the delimiter: the answer rule wins.
    config = GenerationConfig(max_new_tokens=16, temperature=0.0, delimiter=piece, answer_patterns=(re.escape(piece),),
                              eos_token_ids=())
    output = make_backend().generate_step({0: PROMPTS[2]}, config)[0]
    assert (output.stop_reason, output.token_ids) == ("answer", free.token_ids[:n + 1])


def test_eos_ends_the_step_and_stays_out_of_the_context(make_backend):
    backend = make_backend()
    free = make_backend().generate_step({0: PROMPTS[3]}, GenerationConfig(max_new_tokens=12, temperature=0.0, **RUN_ON))[0]
    eos = next(t for n, t in enumerate(free.token_ids) if n >= 3 and t not in free.token_ids[:n])
    n = free.token_ids.index(eos)
    config = GenerationConfig(max_new_tokens=12, temperature=0.0, delimiter=None, stop_at_answer=False, eos_token_ids=(eos,))
    output = backend.generate_step({0: PROMPTS[3]}, config)[0]
    assert output.stop_reason == "eos"
    assert output.token_ids == free.token_ids[:n + 1]  # the end-of-sequence token is part of the action
    assert output.text == backend.tokenizer.decode(free.token_ids[:n])  # ... but not of the text
    assert backend.context_token_ids(0) == output.prompt_token_ids + free.token_ids[:n]
    follow = backend.generate_step({0: PROMPTS[3] + output.text + INJECTIONS[0]}, config)[0]
    assert follow.prompt_token_ids[: len(output.prompt_token_ids) + n] == output.prompt_token_ids + free.token_ids[:n]


def test_token_cap(make_backend):
    output = make_backend().generate_step({0: PROMPTS[0]}, GenerationConfig(max_new_tokens=5, temperature=0.0, **RUN_ON))[0]
    assert (output.stop_reason, len(output.token_ids), len(output.logprobs)) == ("max_tokens", 5, 5)


@pytest.mark.parametrize(("text", "finished"), [
    ("So the total is \\boxed{42}", True),
    ("So the total is \\boxed{\\frac{\\sqrt{2}}{2}}", True),
    ("So the total is \\boxed{\\frac{1}{2}", False),
    ("The answer is 42. ", True),
    ("The answer is 3.", False),  # could still become 3.5
    ("the final answer is 3.5\n", True),
    ("Final answer: x = 7\n", True),
    ("#### 72\n", True),
    ("The answer is not yet known, so", False),
    ("Let me compute 17 + 25 = 42.\n\n", False),
])
def test_default_answer_patterns(text, finished):
    assert has_final_answer(text) is finished


def test_default_delimiter_is_a_blank_line():
    assert GenerationConfig().delimiter == "\n\n"


# -- episode bookkeeping ------------------------------------------------------------------------------
def test_a_prompt_that_does_not_extend_the_episode_reuses_the_shared_prefix(make_backend):
    config = GenerationConfig(max_new_tokens=6, temperature=0.0, **RUN_ON)
    backend = make_backend()
    first = backend.generate_step({0: PROMPTS[0]}, config)[0]
    edited = PROMPTS[0] + "[strategy: summarization] Sum up.\n"  # drops the generated step
    again = backend.generate_step({0: edited}, config)[0]
    fresh = make_backend().generate_step({0: edited}, config)[0]
    assert 0 < again.cached_tokens <= len(first.prompt_token_ids)
    assert again.token_ids == fresh.token_ids and again.prompt_token_ids == fresh.prompt_token_ids


def test_release_and_reset_forget_episodes(make_backend):
    config = GenerationConfig(max_new_tokens=4, temperature=0.0, **RUN_ON)
    backend = make_backend()
    first = backend.generate_step({0: PROMPTS[0], 1: PROMPTS[1]}, config)
    backend.release(0)
    assert backend.context_token_ids(0) == [] and backend.context_token_ids(1)
    second = backend.generate_step({k: PROMPTS[k] + first[k].text for k in (0, 1)}, config)
    assert second[0].cached_tokens == 0 and second[1].cached_tokens > 0
    backend.reset()
    assert backend.context_token_ids(1) == []
    assert backend.generate_step({1: PROMPTS[1]}, config)[1].cached_tokens == 0


def test_bad_input_raises_clear_errors(make_backend):
    backend = make_backend()
    with pytest.raises(TypeError, match="mapping"):
        backend.generate_step(["a prompt"])
    with pytest.raises(TypeError, match="must be a str"):
        backend.generate_step({0: 123})
    with pytest.raises(ValueError, match="empty"):
        backend.generate_step({0: ""})
    with pytest.raises(ContextLengthError, match="max_new_tokens"):
        backend.generate_step({0: PROMPTS[0]}, GenerationConfig(max_new_tokens=5000))
    assert backend.generate_step({}) == {}


def test_a_rejected_batch_keeps_the_other_episodes_caches(make_backend):
    config = GenerationConfig(max_new_tokens=4, temperature=0.0, **RUN_ON)
    backend = make_backend()
    first = backend.generate_step({0: PROMPTS[0]}, config)[0]
    follow_up = PROMPTS[0] + first.text + INJECTIONS[0]
    with pytest.raises(ContextLengthError, match="Episode 1"):
        backend.generate_step({0: follow_up, 1: "many words " * 3000}, config)
    assert backend.generate_step({0: follow_up}, config)[0].cached_tokens > 0


@pytest.mark.parametrize("kwargs", [dict(max_new_tokens=0), dict(temperature=-1.0), dict(top_p=0.0),
                                    dict(delimiter=""), dict(answer_patterns=("(",))])
def test_generation_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        GenerationConfig(**kwargs)


# -- the embedded model -------------------------------------------------------------------------------
@pytest.mark.real_model
def test_embedded_smollm2_writes_a_sensible_step():
    backend = TransformersBackend.from_pretrained("smollm2-135m-instruct")
    messages = [{"role": "user", "content": "What is 2 + 3? Answer briefly."}]
    prompt = backend.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    output = backend.generate_step({0: prompt}, GenerationConfig(max_new_tokens=48, temperature=0.0))[0]
    assert re.search(r"\d", output.text), output.text
    assert "5" in output.text, output.text
    assert output.stop_reason in {"eos", "delimiter", "answer"}


# -- CUDA ---------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_on_cuda_batching_kv_reuse_and_logprobs_hold():
    model, tokenizer = resolve_model(TINY_RANDOM, device="cuda")
    config = GenerationConfig(max_new_tokens=8, temperature=0.0, **RUN_ON)
    batched = run_episodes(TransformersBackend(model, tokenizer), PROMPTS, config)
    reencoded = run_episodes(TransformersBackend(model, tokenizer, full_reencode=True), PROMPTS, config)
    for key, prompt in PROMPTS.items():
        alone = run_episodes(TransformersBackend(model, tokenizer), {key: prompt}, config)[key]
        assert [o.token_ids for o in batched[key]] == [o.token_ids for o in alone] == [o.token_ids for o in reencoded[key]]
        for output in batched[key]:
            ids = torch.tensor([output.prompt_token_ids + output.token_ids], device="cuda")
            with torch.no_grad():
                logits = model(ids).logits[0, len(output.prompt_token_ids) - 1:-1].float()
            expected = torch.log_softmax(logits, -1).gather(1, ids[0, len(output.prompt_token_ids):, None]).squeeze(1)
            assert torch.allclose(torch.tensor(output.logprobs), expected.cpu(), atol=1e-4)


@pytest.mark.gpu
def test_on_cuda_bfloat16_generates_steps():
    backend = TransformersBackend.from_pretrained(TINY_RANDOM, device="cuda", dtype="bfloat16")
    history = run_episodes(backend, PROMPTS, GenerationConfig(max_new_tokens=8, temperature=1.0, seed=0, **RUN_ON))
    assert all(len(o.token_ids) == 8 and all(lp <= 0 for lp in o.logprobs) for v in history.values() for o in v)
