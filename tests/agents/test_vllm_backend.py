"""The vLLM backend against the transformers backend on the tiny random model (CUDA and vllm only)."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

from agents.backends import GenerationConfig  # noqa: E402
from agents.backends.transformers_backend import TransformersBackend  # noqa: E402
from agents.backends.vllm_backend import VLLMBackend, VLLMUnavailableError  # noqa: E402
from agents.models import TINY_RANDOM, resolve_model  # noqa: E402

try:
    import vllm  # noqa: F401
    HAS_VLLM = True
except ImportError:
    HAS_VLLM = False

needs_vllm = pytest.mark.skipif(not (HAS_VLLM and torch.cuda.is_available()), reason="needs vllm and CUDA")

PROMPTS = {0: "Solve step by step.\n\nQuestion: What is 17 + 25?\n\n", 1: "Hi", 2: "Question: 2 * 3?\n\n"}
INJECTION = "[strategy: verification] Check the last result.\n"
RUN_ON = dict(delimiter=None, stop_at_answer=False, eos_token_ids=())


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed")
def test_without_vllm_the_backend_says_how_to_install_it():
    with pytest.raises(VLLMUnavailableError, match=r"rsim\[vllm\]"):
        VLLMBackend(TINY_RANDOM)


@pytest.fixture(scope="module")
def vllm_backend():
    return VLLMBackend(TINY_RANDOM, dtype="float32", gpu_memory_utilization=0.2, max_model_len=1024)


def play(backend, config, steps=3):
    prompts, history = dict(PROMPTS), {key: [] for key in PROMPTS}
    for _ in range(steps):
        for key, output in backend.generate_step(prompts, config).items():
            history[key].append(output)
            prompts[key] += output.text + INJECTION
    for key in PROMPTS:
        backend.release(key)
    return history


@needs_vllm
@pytest.mark.gpu
def test_greedy_steps_match_the_transformers_backend(vllm_backend):
    config = GenerationConfig(max_new_tokens=8, temperature=0.0, **RUN_ON)
    model, tokenizer = resolve_model(TINY_RANDOM, device="cuda")
    expected = play(TransformersBackend(model, tokenizer), config)
    got = play(vllm_backend, config)
    for key in PROMPTS:
        assert [o.token_ids for o in got[key]] == [o.token_ids for o in expected[key]]
        for a, b in zip(got[key], expected[key]):
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-2
    assert any(o.cached_tokens > 0 for outputs in got.values() for o in outputs[1:])  # prefix caching


@needs_vllm
@pytest.mark.gpu
def test_stop_rules_are_the_shared_ones(vllm_backend):
    free = play(vllm_backend, GenerationConfig(max_new_tokens=12, temperature=0.0, **RUN_ON), steps=1)[0][0]
    eos = free.token_ids[4]
    n = free.token_ids.index(eos)
    config = GenerationConfig(max_new_tokens=12, temperature=0.0, delimiter=None, stop_at_answer=False,
                              eos_token_ids=(eos,))
    output = play(vllm_backend, config, steps=1)[0][0]
    assert output.stop_reason == "eos" and output.token_ids == free.token_ids[:n + 1]
    piece = vllm_backend.tokenizer.decode(free.token_ids[:3])[-2:]
    config = GenerationConfig(max_new_tokens=12, temperature=0.0, delimiter=None, answer_patterns=(re.escape(piece),),
                              eos_token_ids=())
    output = play(vllm_backend, config, steps=1)[0][0]
    assert output.stop_reason == "answer" and len(output.token_ids) <= 3


@needs_vllm
@pytest.mark.gpu
def test_seeded_sampling_is_reproducible(vllm_backend):
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=5, **RUN_ON)
    first, again = play(vllm_backend, config), play(vllm_backend, config)
    assert {k: [o.token_ids for o in v] for k, v in first.items()} == {k: [o.token_ids for o in v] for k, v in again.items()}
