"""Reasoner throughput: step-wise rSIM generation against plain ``model.generate``, batching, KV reuse.

    python -m benchmarks.throughput --model smollm2-135m-instruct --batch 8 --tokens 128 --out results.json

One run, one model, one batch of episodes, the same number of generated tokens everywhere. Each
episode generates ``--tokens`` tokens in ``--steps`` steps of equal length (stopping rules off, so
every row really generates its share), with a strategy text injected between steps as an rSIM
rollout does. Decoding is greedy unless ``--temperature`` is given. Measured:

(a) ``stepwise_over_generate``: step-wise tokens/s through :class:`TransformersBackend` (KV cache
    kept across steps) divided by tokens/s of one plain ``model.generate`` call per batch producing
    the same tokens without any injection. Target >= 0.85 on CPU with the embedded model, batch 8.
(b) ``batched_over_sequential``: the same step-wise episodes as one batch versus one episode at a
    time through the same backend (target >= 3.5 with batch 8).
(c) ``kv_reuse_over_full_reencode``: the backend keeping KV caches versus re-encoding each episode's
    whole context at every step (``full_reencode=True``; the same tokens are fed, only the cache differs).

Every measurement is repeated ``--repeats`` times, interleaved so that a slow moment of a shared
machine hits all of them alike. Ratios are taken between the fastest repeats (other load on a shared
machine only ever adds time); ratios between medians are reported beside them. ``--random-shape qwen2.5-0.5b``
replaces the model by a randomly initialised one of Qwen2.5-0.5B's layer shapes (with the embedded
tokenizer's vocabulary) for a CUDA run without a download.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from agents.backends.base import GenerationConfig
from agents.backends.transformers_backend import TransformersBackend
from agents.models import random_causal_lm, resolve_model
from benchmarks.common import machine
from rsim_env.atomic import write_json_atomic

QUESTIONS = [
    "What is 17 + 25?",
    "A train travels 120 km at 60 km/h. How long does the trip take?",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "What is the greatest common divisor of 84 and 126?",
    "Compute 3/4 + 5/6 and simplify.",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "What is 2 to the power of 10?",
    "Betty needs $100 for a new wallet. She has half of the money. Her parents give her $15 and her "
    "grandparents twice as much as her parents. How much more money does Betty need?",
]
INJECTIONS = [
    "[strategy: decomposition] Break the problem into smaller sub-problems and list them in order.\n",
    "[strategy: verification] Verify the most recent result by recomputing it another way.\n",
    "[strategy: continuation] Continue with the next step of the solution.\n",
    "[strategy: termination] Stop reasoning and state the final answer now, in the form \\boxed{answer}.\n",
]
RANDOM_SHAPES = {
    # Qwen2.5-0.5B: 24 layers, hidden 896, 14 query / 2 key-value heads, MLP 4864, tied embeddings.
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                         rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
}


@dataclass
class Result:
    """What one run measured; written as JSON."""

    date: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    seconds: dict[str, list[float]] = field(default_factory=dict)
    """Wall-clock seconds of every repeat of every measurement."""
    tokens_per_s: dict[str, float] = field(default_factory=dict)
    """Generated tokens per second of the fastest repeat."""
    ratios: dict[str, float] = field(default_factory=dict)
    """(a) stepwise_over_generate, (b) batched_over_sequential, (c) kv_reuse_over_full_reencode (fastest repeats)."""
    ratios_median: dict[str, float] = field(default_factory=dict)
    """The same ratios between median times."""


def prompts_for(tokenizer: Any, batch: int) -> dict[int, str]:
    """The episodes' first reasoner prompts: chat-formatted questions of different lengths."""
    instruction = ("Solve the problem step by step. Before each step you are given a strategy; follow it and "
                   "write exactly one step.")
    prompts = {}
    for i in range(batch):
        question = f"{instruction}\n\nQuestion: {QUESTIONS[i % len(QUESTIONS)]}"
        messages = [{"role": "user", "content": question}]
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = question + "\n\n"
        prompts[i] = text + INJECTIONS[0]
    return prompts


def stepwise(backend: TransformersBackend, prompts: dict[int, str], steps: int, tokens_per_step: int,
             temperature: float, batched: bool = True) -> float:
    """Seconds to run all episodes for ``steps`` steps, injecting a strategy between steps."""
    config = GenerationConfig(max_new_tokens=tokens_per_step, temperature=temperature, delimiter=None,
                              stop_at_answer=False, eos_token_ids=(), seed=0)
    groups = [dict(prompts)] if batched else [{key: prompt} for key, prompt in prompts.items()]
    backend.reset()
    start = time.perf_counter()
    for group in groups:
        for step in range(steps):
            outputs = backend.generate_step(group, config)
            for key, output in outputs.items():
                assert len(output.token_ids) == tokens_per_step
                group[key] += output.text + INJECTIONS[(step + 1) % len(INJECTIONS)]
        for key in group:
            backend.release(key)
    return time.perf_counter() - start


def plain_generate(model: Any, tokenizer: Any, prompts: dict[int, str], tokens: int, temperature: float) -> float:
    """Seconds for one ``model.generate`` call producing ``tokens`` tokens for every prompt of the batch."""
    tokenizer.padding_side = "left"
    inputs = tokenizer(list(prompts.values()), return_tensors="pt", padding=True, add_special_tokens=False)
    inputs = {name: tensor.to(model.device) for name, tensor in inputs.items()}
    sampling = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 else dict(do_sample=False)
    _sync(model.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=tokenizer.pad_token_id,
                             **sampling)
    _sync(model.device)
    assert out.shape[1] - inputs["input_ids"].shape[1] == tokens
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    model, tokenizer = resolve_model(args.model, device=args.device, dtype=args.dtype)
    if args.random_shape:
        from transformers import AutoConfig

        shape = dict(RANDOM_SHAPES[args.random_shape])
        config = AutoConfig.for_model(shape.pop("model_type"), vocab_size=len(tokenizer), **shape,
                                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id)
        model = random_causal_lm(config, device=args.device).to(dtype=model.dtype)
    return model, tokenizer


def run(args: argparse.Namespace) -> Result:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load(args)
    prompts = prompts_for(tokenizer, args.batch)
    if args.tokens % args.steps:
        raise SystemExit(f"--tokens ({args.tokens}) must be a multiple of --steps ({args.steps}).")
    per_step = args.tokens // args.steps
    reuse = TransformersBackend(model, tokenizer)
    reencode = TransformersBackend(model, tokenizer, full_reencode=True)
    measurements: dict[str, Callable[[], float]] = {
        "generate": lambda: plain_generate(model, tokenizer, prompts, args.tokens, args.temperature),
        "stepwise": lambda: stepwise(reuse, prompts, args.steps, per_step, args.temperature),
        "stepwise_full_reencode": lambda: stepwise(reencode, prompts, args.steps, per_step, args.temperature),
    }
    if not args.skip_sequential:
        measurements["stepwise_sequential"] = lambda: stepwise(reuse, prompts, args.steps, per_step, args.temperature,
                                                              batched=False)
    # Warm-up: first calls pay for allocator growth, thread-pool start-up and kernel selection.
    plain_generate(model, tokenizer, prompts, 8, args.temperature)
    stepwise(reuse, prompts, 2, 4, args.temperature)
    stepwise(reencode, prompts, 2, 4, args.temperature)

    result = Result(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine={**machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "device": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "cpu"},
        settings={**{k: v for k, v in vars(args).items() if k != "out"}, "dtype": str(model.dtype),
                  "parameters": sum(p.numel() for p in model.parameters())},
    )
    for repeat in range(args.repeats):
        for name, measure in measurements.items():
            seconds = measure()
            result.seconds.setdefault(name, []).append(seconds)
            logging.info("repeat %d %-24s %.2f s", repeat + 1, name, seconds)
    generated = args.batch * args.tokens
    fastest = {name: min(times) for name, times in result.seconds.items()}
    result.tokens_per_s = {name: generated / seconds for name, seconds in fastest.items()}
    result.ratios = ratios(fastest)
    result.ratios_median = ratios({name: statistics.median(times) for name, times in result.seconds.items()})
    return result


def ratios(seconds: dict[str, float]) -> dict[str, float]:
    """The three speed ratios (higher is better for the backend) from seconds per measurement."""
    result = {"stepwise_over_generate": seconds["generate"] / seconds["stepwise"]}
    if "stepwise_sequential" in seconds:  # (b)
        result["batched_over_sequential"] = seconds["stepwise_sequential"] / seconds["stepwise"]
    result["kv_reuse_over_full_reencode"] = seconds["stepwise_full_reencode"] / seconds["stepwise"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a name or path for resolve_model")
    parser.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES),
                        help="use a randomly initialised model of this shape (the tokenizer still comes from --model)")
    parser.add_argument("--batch", type=int, default=8, help="episodes per batch")
    parser.add_argument("--tokens", type=int, default=128, help="generated tokens per episode")
    parser.add_argument("--steps", type=int, default=4, help="steps per episode (the tokens are split evenly)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 decodes greedily")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sequential", action="store_true", help="skip (b), the slowest measurement")
    parser.add_argument("--out", default="results/throughput.json", help="JSON file for the results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run(args)
    print(json.dumps({"tokens_per_s": result.tokens_per_s, "ratios": result.ratios,
                      "ratios_median": result.ratios_median}, indent=2))
    write_json_atomic(args.out, asdict(result))
    print(f"written to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
