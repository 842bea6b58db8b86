"""rsim's reasoner-only GRPO update against TRL's ``GRPOTrainer``, same model and sizes, in one run.

    python -m benchmarks.trl_comparison --model smollm2-135m-instruct --prompts 4 --group-size 4 \\
        --tokens 64 --updates 3 --out results/trl_comparison.json

Both sides run the same number of GRPO updates on the same model (LoRA of the same rank on the same
projections, or full fine-tuning with ``--lora-r 0``), from the same initial weights, on the same
prompts: the reasoner's prompt in the env (instruction, question and the injected strategy; with one
step per episode the step cap leaves only *termination*, "give the final answer") for tasks of the
suite's train split. Per update each side samples
``--group-size`` completions for each of ``--prompts`` prompts, exactly ``--tokens`` tokens long
(rsim: stopping rules and EOS off; TRL: ``min_new_tokens``), scores them with the suite's checker,
computes group-relative advantages and takes one optimizer step (``num_iterations=1``, ``beta=0``,
``loss_type="dapo"``, ``scale_rewards="group"``, the same learning rate and temperature, no
gradient checkpointing, fp32). An update is timed from the start of generation to the end of the
optimizer step:

* rsim: :meth:`LeaderFollowerTrainer.update` with schedule ``reasoner-only`` (one env step per
  episode, ``max_steps=1``), i.e. a batched rollout through the env and its checker, then the loss.
* TRL: one training step of ``GRPOTrainer`` (``on_step_begin`` to ``on_step_end``), i.e. its
  ``model.generate`` rollout, reward function and loss.

The first ``--warmup`` updates of each side are not counted. The ratio reported is rsim's median
seconds per update over TRL's (below 1: rsim is faster). TRL must be installed (``pip install trl``).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import logging
import statistics
import tempfile
import time
import warnings
from typing import Any

import torch

import rsim_env
from agents.backends.transformers_backend import TransformersBackend
from agents.models import resolve_model
from agents.rollout import REASONER
from agents.training.config import TrainConfig
from agents.training.trainer import LeaderFollowerTrainer, Position
from benchmarks.common import machine
from rsim_env.atomic import write_json_atomic

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny-random", help="smollm2-135m-instruct, tiny-random, a Hub id or a path")
    p.add_argument("--env", default="rsim/ChainSum-v0", help="environment id whose train split gives the prompts")
    p.add_argument("--prompts", type=int, default=4, help="prompts (groups) per update")
    p.add_argument("--group-size", type=int, default=4, help="completions per prompt (num_generations)")
    p.add_argument("--tokens", type=int, default=64, help="tokens generated per completion")
    p.add_argument("--updates", type=int, default=3, help="timed updates per side")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates per side, before the timed ones")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank; 0 fine-tunes all weights")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    for name in ("prompts", "group_size", "tokens", "updates"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.group_size < 2:
        p.error("--group-size must be at least 2 (GRPO's baseline is the group)")
    return args


def env_options() -> dict[str, Any]:
    """The main job's easy chain sums (two terms of up to two digits)."""
    return dict(TrainConfig().env_options)


def first_prompts(env_id: str, count: int) -> list[dict[str, Any]]:
    """The reasoner's prompt in one-step episodes, and the task, for ``count`` tasks of the train split."""
    env = rsim_env.make(env_id, wrapped=False, max_steps=1, split="train", **env_options())
    rows = []
    for i in range(count):
        env.reset(seed=i, options={"task_index": i % len(env.suite.split("train"))})
        env.step(int(env.observe("planner")["action_mask"].argmax()))  # the one legal strategy: termination
        rows.append({"prompt": env.observe("reasoner")["text"], "task": env.task})
    env.close()
    return rows


def rsim_side(args: argparse.Namespace, model: Any, tokenizer: Any, out_dir: str) -> list[dict[str, float]]:
    config = TrainConfig(
        suites=[args.env], schedule="reasoner-only", algorithm="grpo", reasoner=args.model, lora_r=args.lora_r,
        groups_per_update=args.prompts, group_size=args.group_size, batch_size=args.prompts * args.group_size,
        reasoner_lr=args.lr, epochs=1, max_steps=1, max_new_tokens=args.tokens, max_tokens=args.tokens + 1,
        temperature=args.temperature, seed=args.seed, env_options=env_options(), out=out_dir,
        generation_options={"delimiter": None, "stop_at_answer": False, "eos_token_ids": []},
        grpo={"beta": 0.0, "loss_type": "dapo", "scale_rewards": "group"})
    trainer = LeaderFollowerTrainer(config, reasoner=TransformersBackend(model, tokenizer), progress=False)
    rows = []
    for u in range(args.warmup + args.updates):
        metrics = trainer.update(args.env, Position(0, u, u), {REASONER})
        rows.append({"seconds": metrics["seconds_per_update"], "tokens": metrics["generated_tokens"],
                     "reward": metrics["reasoner_reward"]})
        _progress("rsim", u, args, rows[-1]["seconds"])
    return rows[args.warmup:]


def trl_side(args: argparse.Namespace, model: Any, tokenizer: Any, out_dir: str) -> list[dict[str, float]]:
    try:
        from datasets import Dataset
        from transformers import PrinterCallback, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as error:
        raise SystemExit(f"This benchmark needs TRL: pip install trl ({error}).") from None

    total = args.warmup + args.updates
    rows = first_prompts(args.env, args.prompts * total)
    tasks = {row["prompt"]: row["task"] for row in rows}
    checker = rsim_env.make(args.env, wrapped=False, **env_options()).suite.checker

    def accuracy(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [float(checker.check(c, tasks[p]).correct) for p, c in zip(prompts, completions)]

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[dict[str, float]] = []
            self._started = 0.0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self._started = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            self.steps.append({"seconds": time.perf_counter() - self._started})
            _progress("TRL", len(self.steps) - 1, args, self.steps[-1]["seconds"])

        def on_log(self, _args: Any, _state: Any, _control: Any, logs: dict[str, float] | None = None, **__: Any) -> None:
            if logs and "completions/mean_length" in logs and self.steps:
                batch = args.prompts * args.group_size
                self.steps[-1].update(tokens=logs["completions/mean_length"] * batch, reward=logs.get("reward", float("nan")))

    peft_config = None
    if args.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                 target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    config = GRPOConfig(
        output_dir=out_dir, max_steps=total, per_device_train_batch_size=args.prompts * args.group_size,
        gradient_accumulation_steps=1, num_generations=args.group_size, max_completion_length=args.tokens,
        generation_kwargs={"min_new_tokens": args.tokens}, temperature=args.temperature, top_p=1.0,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, num_iterations=1, beta=0.0,
        loss_type="dapo", scale_rewards="group", gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(),
        bf16=False, fp16=False, logging_steps=1, save_strategy="no", report_to="none", shuffle_dataset=False,
        dataloader_num_workers=0, disable_tqdm=True, seed=args.seed)
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=accuracy, args=config, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": r["prompt"]} for r in rows]),
                          peft_config=peft_config, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # it prints every step's logs; the summary is enough
    trainer.train()
    return timer.steps[args.warmup:]


def _progress(side: str, index: int, args: argparse.Namespace, seconds: float) -> None:
    kind = "warm-up" if index < args.warmup else "timed"
    print(f"  {side} update {index + 1}/{args.warmup + args.updates} ({kind}): {seconds:.2f} s", flush=True)


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in rows]
    tokens = [r.get("tokens", float("nan")) for r in rows]
    return {"seconds_per_update": statistics.median(seconds), "fastest_update": min(seconds),
            "generated_tokens_per_update": statistics.median(tokens), "updates": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.manual_seed(args.seed)
    model, tokenizer = resolve_model(args.model, seed=args.seed)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trl_model = copy.deepcopy(model)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"rsim: {args.warmup}+{args.updates} reasoner-only GRPO updates ...", flush=True)
        ours = summarise(rsim_side(args, model, tokenizer, f"{tmp}/rsim"))
        print(f"TRL: {args.warmup}+{args.updates} GRPOTrainer steps ...", flush=True)
        theirs = summarise(trl_side(args, trl_model, tokenizer, f"{tmp}/trl"))
    import trl
    import transformers

    result = {
        "benchmark": "trl_comparison", "date": datetime.date.today().isoformat(), "machine": machine(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "rsim": ours, "trl": theirs,
        "rsim_over_trl_seconds": ours["seconds_per_update"] / theirs["seconds_per_update"],
    }
    batch = args.prompts * args.group_size
    print(f"model {args.model}, {args.prompts} prompts x {args.group_size} completions x {args.tokens} tokens "
          f"(batch {batch}), LoRA r={args.lora_r}, {args.updates} timed updates")
    for name, side in (("rsim reasoner-only GRPO", ours), ("TRL GRPOTrainer", theirs)):
        print(f"  {name:24s} {side['seconds_per_update']:7.2f} s/update (fastest {side['fastest_update']:.2f}), "
              f"{side['generated_tokens_per_update']:.0f} generated tokens/update")
    print(f"  rsim / TRL seconds per update: {result['rsim_over_trl_seconds']:.2f} (below 1: rsim is faster)")
    if args.out:
        write_json_atomic(args.out, result)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
