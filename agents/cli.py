"""The ``rsim`` command line.

    rsim suites                      the registered task suites
    rsim envs                        the registered environment ids
    rsim strategies [--file F]       the strategy set (default: the paper's nine)
    rsim play [--env ID] [--seed N]  you are the planner; the reasoner writes the steps

Each sub-command is a function ``cmd_<name>(args) -> int`` (the exit status) so tests can call it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence, TextIO

import rsim_env
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


def make_reasoner(name: str, env: rsim_env.raw_env, seed: int | None) -> Callable[[str], str]:
    """A reasoner for ``rsim play``: ``"sim"`` is the simulated reasoner (simulated suites only)."""
    if name == "sim":
        if env.suite.name != "sim":
            raise RSIMError(f"The simulated reasoner only plays the simulated suite, not {env.suite.name!r}; "
                            "use --env rsim/Sim-v0 or pass an LLM with --reasoner.")
        from rsim_env.sim import SimulatedReasoner

        return SimulatedReasoner(env.strategies, seed=seed).act
    raise RSIMError(f"Unknown reasoner {name!r}; available: sim.")


def cmd_play(args: argparse.Namespace, stdin: TextIO = sys.stdin) -> int:
    env = rsim_env.make(args.env, **({"max_steps": args.max_steps} if args.max_steps else {}))
    raw = env.unwrapped
    reasoner = make_reasoner(args.reasoner, raw, args.seed)
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
            env.step(reasoner(obs["text"]))
            print(f"  {agent}: {raw.steps[-1]}\n")
        else:
            legal = [int(i) for i in obs["action_mask"].nonzero()[0]]
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
    p.add_argument("--reasoner", default="sim", help="'sim' (the simulated reasoner)")
    p.add_argument("--seed", type=int, default=None, help="episode seed")
    p.add_argument("--max-steps", type=int, default=None, help="override the step cap")
    p.set_defaults(func=cmd_play)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except RSIMError as err:
        print(f"rsim: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
