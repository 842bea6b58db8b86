"""The ``rsim`` command line.

    rsim suites                      the registered task suites
    rsim envs                        the registered environment ids
    rsim strategies [--file F]       the strategy set (default: the paper's nine)
    rsim play [--env ID] [--seed N]  you are the planner; the reasoner writes the steps
    rsim eval --suite S --planner P  evaluate planners with a reasoner on a held-out split
    rsim train [--config F] [--set k=v ...] [--resume]   leader-follower training
    rsim bench env|sandbox|throughput|trl [options]      benchmarks from benchmarks/

Each sub-command is a function ``cmd_<name>(args) -> int`` (the exit status) so tests can call it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence, TextIO

import rsim_env
from agents.backends.base import GenerationConfig
from agents.evaluation import evaluate, markdown_table, write_results
from agents.planners.baselines import make_planner
from agents.rollout import Reasoner, ReasonerPrompter, RolloutConfig, TextReasoner
from rsim_env.env.core import reasoner_header
from rsim_env.errors import RSIMError

log = logging.getLogger("rsim")


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain-text table with columns padded to their widest cell."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_suites(args: argparse.Namespace) -> int:
    rows = []
    for spec in rsim_env.list_suites():
        sizes = ""
        if args.sizes:
            suite = rsim_env.make_suite(spec.name)
            sizes = f"{len(suite.train)}/{len(suite.test)}"
        rows.append((spec.name, spec.kind, sizes, spec.description) if args.sizes else
                    (spec.name, spec.kind, spec.description))
    header = ("suite", "kind", "train/test", "description") if args.sizes else ("suite", "kind", "description")
    print(_table(rows, header))
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    rows = [(env_id, rsim_env.spec(env_id).suite,
             ", ".join(f"{k}={v}" for k, v in rsim_env.spec(env_id).kwargs.items()))
            for env_id in rsim_env.list_envs()]
    print(_table(rows, ("id", "suite", "defaults")))
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    strategies = rsim_env.StrategySet.load(args.file) if args.file else rsim_env.StrategySet.default()
    rows = [(s.index, s.name, "yes" if s.terminates else "", s.prompt) for s in strategies]
    print(_table(rows, ("index", "name", "ends", "injected prompt")))
    return 0


def _parse_choice(answer: str, strategies: rsim_env.StrategySet, legal: Sequence[int]) -> int | None:
    """A strategy index from what the user typed (a number or a name), or ``None`` if unusable."""
    answer = answer.strip().lower()
    if answer.isdigit():
        index = int(answer)
    elif answer in strategies:
        index = strategies.index(answer)
    else:
        return None
    return index if index in legal else None


def make_reasoner(name: str, env: rsim_env.raw_env, *, seed: int | None = None, device: str = "cpu",
                  dtype: str = "float32") -> Reasoner:
    """A reasoner by name: ``"sim"`` (the simulated reasoner; simulated suites only), or a model
    name or path for the transformers backend (``smollm2-135m-instruct``, ``tiny-random``, a Hub id)."""
    if name == "sim":
        if env.suite.name != "sim":
            raise RSIMError(f"The simulated reasoner only plays the simulated suite, not {env.suite.name!r}; "
                            "use --env rsim/Sim-v0 or pass an LLM with --reasoner (e.g. smollm2-135m-instruct).")
        from rsim_env.sim import SimulatedReasoner

        return TextReasoner(SimulatedReasoner(env.strategies, seed=seed).act)
    from agents.backends.transformers_backend import TransformersBackend

    return TransformersBackend.from_pretrained(name, device=device, dtype=dtype)


def _generation(args: argparse.Namespace) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)


def cmd_play(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    stdin = stdin or sys.stdin  # read at call time, so a replaced sys.stdin is honoured
    env = rsim_env.make(args.env, **_env_overrides(args))
    raw = env.unwrapped
    reasoner = make_reasoner(args.reasoner, raw, seed=args.seed, device=args.device)
    prompter = ReasonerPrompter(getattr(reasoner, "tokenizer", None))
    generation = _generation(args)
    strategies = raw.strategies
    env.reset(seed=args.seed)
    print(f"{args.env}: you are the planner. Type a strategy number or name; 'q' quits.\n")
    print(f"Question: {raw.task.prompt}\n")
    final_rewards: dict[str, float] = {}
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, _ = env.last()
        if terminated or truncated:
            final_rewards[agent] = reward
            env.step(None)
        elif agent == "reasoner":
            prompt = prompter(obs["text"], reasoner_header(raw.config.instruction, raw.task.prompt))
            env.step(reasoner.generate_step({0: prompt}, generation)[0].text)
            print(f"  {agent}: {raw.steps[-1]}\n")
        else:
            legal = [int(i) for i in obs["action_mask"].nonzero()[0]]
            if len(legal) == 1:  # the step cap leaves one choice: no need to ask
                print(f"[{legal[0]}] {strategies[legal[0]].name} (the only legal strategy now)")
                env.step(legal[0])
                continue
            print("  ".join(f"[{i}] {strategies[i].name}" for i in legal))
            choice = _ask_strategy(stdin, strategies, legal)
            if choice is None:
                print("\nbye")
                return 0
            env.step(choice)
    record = raw.episode_record
    verdict = "correct" if record.correct else f"incorrect: {record.check.reason}"
    print(f"Final answer: {record.check.answer} ({verdict}); reference answer: {record.task.answer}")
    print(f"Strategies: {', '.join(record.strategies)}")
    print("Rewards: " + ", ".join(f"{a} {r:+.3f}" for a, r in final_rewards.items()))
    return 0


def _ask_strategy(stdin: TextIO, strategies: rsim_env.StrategySet, legal: Sequence[int]) -> int | None:
    """Prompt until the user types a legal strategy; ``None`` when they quit or input ends."""
    while True:
        print("strategy> ", end="", flush=True)
        line = stdin.readline()
        if not line or line.strip().lower() in ("q", "quit", "exit"):
            return None
        choice = _parse_choice(line, strategies, legal)
        if choice is not None:
            return choice
        print(f"  not a legal strategy here: {line.strip()!r}")


def cmd_eval(args: argparse.Namespace) -> int:
    env_id = _env_id(args)
    env = rsim_env.make(env_id, wrapped=False, split=args.split, **_env_overrides(args))
    planners = [make_planner(name, env.strategies, seed=args.seed, device=args.device, dtype=args.dtype)
                for name in args.planner]
    reasoner = make_reasoner(args.reasoner, env, seed=args.seed, device=args.device, dtype=args.dtype)
    config = RolloutConfig(batch_size=args.batch_size, greedy=args.greedy_planner, generation=_generation(args),
                           seed=args.seed)
    results = []
    for name, planner in zip(args.planner, planners):
        log.info("evaluating planner %s with reasoner %s on %s (%d episodes)", name, args.reasoner, env_id, args.episodes)
        results.append(evaluate(env_id, planner, reasoner, episodes=args.episodes, planner_name=name,
                                reasoner_name=args.reasoner, config=config, split=args.split,
                                progress=not args.quiet, **_env_overrides(args)))
    out = Path(args.out) if args.out else Path("runs") / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
    json_path, md_path = write_results(results, out)
    print(markdown_table(results))
    print(f"Wrote {json_path} and {md_path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from agents.training.config import TrainConfig
    from agents.training.trainer import LeaderFollowerTrainer

    overrides = list(args.set or [])
    if args.out:
        overrides.append(f"out={args.out}")
    config = TrainConfig.load(args.config, overrides)
    trainer = LeaderFollowerTrainer(config, progress=not args.quiet)
    results = trainer.train(resume=args.resume)
    print(markdown_table(results))
    print(f"Run directory: {config.out} (report: {Path(config.out) / 'report.md'})")
    return 0


BENCHMARKS = {
    "env": "env_throughput",
    "sandbox": "sandbox_throughput",
    "throughput": "throughput",
    "trl": "trl_comparison",
}


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib
    import runpy

    try:
        importlib.import_module("benchmarks")
    except ImportError:
        root = Path(__file__).resolve().parent.parent
        if not (root / "benchmarks").is_dir():
            raise RSIMError("The benchmarks live in the repository's benchmarks/ folder; run rsim bench from a clone.")
        sys.path.insert(0, str(root))
    sys.argv = [f"benchmarks.{BENCHMARKS[args.name]}", *args.rest]
    runpy.run_module(f"benchmarks.{BENCHMARKS[args.name]}", run_name="__main__")
    return 0


def _env_id(args: argparse.Namespace) -> str:
    if args.env:
        return args.env
    for env_id in rsim_env.list_envs():
        if rsim_env.spec(env_id).suite == args.suite:
            return env_id
    raise RSIMError(f"No registered environment for suite {args.suite!r}; see `rsim envs` or pass --env.")


def _env_overrides(args: argparse.Namespace) -> dict:
    """Env options from --max-steps, --max-tokens and --env-option KEY=VALUE (values read as YAML)."""
    import yaml

    options: dict = {}
    for item in args.env_option or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RSIMError(f"--env-option {item!r} must look like KEY=VALUE, e.g. suite_kwargs={{max_terms: 2}}.")
        options[key.strip()] = yaml.safe_load(raw)
    options.update({k: v for k, v in (("max_steps", args.max_steps), ("max_tokens", args.max_tokens)) if v is not None})
    return options


def _add_env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=int, default=None, help="override the env's step cap")
    p.add_argument("--max-tokens", type=int, default=None, help="override the env's token budget")
    p.add_argument("--env-option", action="append", metavar="KEY=VALUE",
                   help="another env option (YAML value), e.g. 'suite_kwargs={max_terms: 2, max_digits: 1}'; repeatable")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default: float32)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="token cap per reasoner step (default: 96)")
    p.add_argument("--temperature", type=float, default=0.0, help="reasoner sampling temperature; 0 = greedy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsim", description="Reinforced strategy injection: environments, agents, training.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("suites", help="list the registered task suites")
    p.add_argument("--sizes", action="store_true", help="build each suite and show its train/test sizes")
    p.set_defaults(func=cmd_suites)

    p = sub.add_parser("envs", help="list the registered environment ids")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("strategies", help="show a strategy set")
    p.add_argument("--file", help="a YAML/JSON strategy file (default: the paper's nine)")
    p.set_defaults(func=cmd_strategies)

    p = sub.add_parser("play", help="be the planner: pick strategies, watch the reasoner")
    p.add_argument("--env", default="rsim/Sim-v0", help="environment id (default: rsim/Sim-v0)")
    p.add_argument("--reasoner", default="sim", help="'sim' (the simulated reasoner) or a model name/path")
    p.add_argument("--seed", type=int, default=None, help="episode seed")
    _add_env_options(p)
    _add_model_options(p)
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("eval", help="evaluate planners with a reasoner on a suite's held-out split")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--suite", default="arithmetic", help="suite name (default: arithmetic)")
    where.add_argument("--env", default=None, help="environment id instead of --suite")
    p.add_argument("--planner", nargs="+", default=["none"],
                   help="planners: random, none, fixed:<strategy>, round-robin, ucb, llm:<model>, or a saved planner "
                        "directory; several are evaluated one after another (default: none)")
    p.add_argument("--reasoner", default="smollm2-135m-instruct",
                   help="sim, smollm2-135m-instruct, tiny-random, a Hub id or a local path")
    p.add_argument("--episodes", type=int, default=32, help="episodes per planner (default: 32)")
    p.add_argument("--batch-size", type=int, default=8, help="episodes run in lockstep (default: 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", choices=("train", "test", "all"))
    _add_env_options(p)
    p.add_argument("--greedy-planner", action="store_true", help="planners pick their most likely strategy")
    p.add_argument("--out", default=None, help="results folder (default: runs/eval-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="train a planner and/or reasoner (leader-follower RL)")
    p.add_argument("--config", default=None, help="a YAML TrainConfig (default: the main job's defaults)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. updates=20 grpo.beta=0.04")
    p.add_argument("--out", default=None, help="run directory (default: the config's out)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="run a benchmark from benchmarks/")
    p.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # peft asks transformers 5 for a renamed attribute on every LoRA model; the notice is for peft, not for users
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        return args.func(args)
    except RSIMError as err:
        print(f"rsim: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
