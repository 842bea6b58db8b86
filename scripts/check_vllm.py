"""Check the vLLM backend on a GPU machine: agreement with transformers, prefix caching, speed.

    python scripts/check_vllm.py [--model smollm2-135m-instruct] [--batch 8] [--steps 4]

Runs the same greedy rSIM-style episodes (a strategy text injected between steps) through
``VLLMBackend`` and ``TransformersBackend`` on CUDA, both in float32, and reports: how many steps
produced identical tokens, the largest log-probability difference, whether vLLM's prefix cache served
the earlier context at later steps, and tokens/s of each. Exits with status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from agents.backends import GenerationConfig
from agents.backends.transformers_backend import TransformersBackend
from agents.backends.vllm_backend import VLLMBackend
from agents.models import resolve_model

QUESTIONS = ["What is 17 + 25?", "What is 2 to the power of 10?", "Compute 3/4 + 5/6.",
             "A train travels 120 km at 60 km/h. How long does it take?"]
INJECTION = "[strategy: verification] Verify the most recent result by recomputing it another way.\n"


def play(backend, prompts: dict[int, str], config: GenerationConfig, steps: int):
    prompts, history = dict(prompts), {key: [] for key in prompts}
    start = time.perf_counter()
    for _ in range(steps):
        for key, output in backend.generate_step(prompts, config).items():
            history[key].append(output)
            prompts[key] += output.text + INJECTION
    seconds = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for outputs in history.values() for o in outputs)
    return history, tokens / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA device: the vLLM backend needs a GPU.")
        return 1

    model, tokenizer = resolve_model(args.model, device="cuda", dtype="float32")
    prompts = {}
    for i in range(args.batch):
        messages = [{"role": "user", "content": f"Solve step by step. {QUESTIONS[i % len(QUESTIONS)]}"}]
        prompts[i] = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=0.0)

    reference, hf_speed = play(TransformersBackend(model, tokenizer), prompts, config, args.steps)
    del model
    torch.cuda.empty_cache()
    vllm = VLLMBackend(args.model, dtype="float32", gpu_memory_utilization=0.5)
    play(vllm, prompts, config, 1)  # warm-up (CUDA graphs, allocator)
    vllm.reset()
    got, vllm_speed = play(vllm, prompts, config, args.steps)

    pairs = [(a, b) for key in prompts for a, b in zip(got[key], reference[key])]
    same = sum(a.token_ids == b.token_ids for a, b in pairs)
    # Compare log-probs over the common prefix of the two token sequences.
    diffs = [abs(x - y) for a, b in pairs for (x, y, s, t) in zip(a.logprobs, b.logprobs, a.token_ids, b.token_ids) if s == t]
    cached = [o.cached_tokens for outputs in got.values() for o in outputs[1:]]
    print(f"identical steps: {same}/{len(pairs)}")
    print(f"largest log-prob difference on shared tokens: {max(diffs):.2e}")
    print(f"later steps served from vLLM's prefix cache: {sum(c > 0 for c in cached)}/{len(cached)}")
    print(f"tokens/s: vLLM {vllm_speed:.0f}, transformers {hf_speed:.0f}")
    first = got[0][0]
    print(f"episode 0, step 1 ({first.stop_reason}): {first.text!r}")
    ok = same >= 0.75 * len(pairs) and max(diffs) < 5e-2 and all(c > 0 for c in cached)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
