"""Environment throughput: agent steps per second with scripted agents.

    python -m benchmarks.env_throughput [--steps 60000] [--out results/env_throughput.json]

Measures, in one run, the wrapped env (``rsim_env.make``, as users step it) and the raw env on:

* ``rsim/Sim-v0`` with a scripted planner (continue four times, then terminate) and the simulated
  reasoner (target: at least 20,000 agent steps/s);
* ``rsim/Arithmetic-v0`` with the same planner and a scripted reasoner that writes a short step and,
  after termination, the reference answer in ``\\boxed{}`` (so every episode ends in the math checker).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import rsim_env
from benchmarks.common import machine
from rsim_env.atomic import write_json_atomic
from rsim_env.sim import SimulatedReasoner

SIM_TARGET = 20_000


def scripted_planner(steps_before_termination: int = 4) -> Callable[[dict, dict], int]:
    strategies = rsim_env.StrategySet.default()
    cont, term = strategies.index("continuation"), strategies.termination_index

    def plan(obs: dict, info: dict) -> int:
        return term if info["step"] >= steps_before_termination or not obs["action_mask"][cont] else cont
    return plan


def scripted_math_reasoner(env) -> Callable[[str], str]:
    def reason(text: str) -> str:
        if text.rsplit("[strategy: ", 1)[-1].startswith("termination]"):  # termination was injected last
            return f"The answer is \\boxed{{{env.unwrapped.task.answer}}}."
        return "Work out the next part of the calculation carefully."
    return reason


def agent_steps_per_second(env_id: str, steps: int, wrapped: bool) -> float:
    env = rsim_env.make(env_id, wrapped=wrapped)
    planner = scripted_planner()
    reasoner = SimulatedReasoner(seed=0).act if env_id == "rsim/Sim-v0" else scripted_math_reasoner(env)
    env.reset(seed=0)
    done = 0
    start = time.perf_counter()
    while done < steps:
        for agent in env.agent_iter():
            obs, _, terminated, truncated, info = env.last()
            if terminated or truncated:
                env.step(None)
                continue
            env.step(planner(obs, info) if agent == "planner" else reasoner(obs["text"]))
            done += 1
        env.reset()
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60_000, help="agent steps per measurement")
    parser.add_argument("--out", default=None, help="write the results as JSON here (atomically)")
    args = parser.parse_args(argv)

    results = {"machine": machine(), "agent_steps_per_second": {}}
    print(f"{'environment':24s} {'wrapped':>12s} {'raw':>12s}  (agent steps/s)")
    for env_id, steps in (("rsim/Sim-v0", args.steps), ("rsim/Arithmetic-v0", args.steps // 4)):
        rates = {kind: agent_steps_per_second(env_id, steps, kind == "wrapped") for kind in ("wrapped", "raw")}
        results["agent_steps_per_second"][env_id] = rates
        print(f"{env_id:24s} {rates['wrapped']:12,.0f} {rates['raw']:12,.0f}")
    sim = results["agent_steps_per_second"]["rsim/Sim-v0"]["wrapped"]
    results["sim_target"] = SIM_TARGET
    results["sim_over_target"] = sim / SIM_TARGET
    print(f"Sim-v0 (wrapped) / target {SIM_TARGET:,}: {sim / SIM_TARGET:.2f}x")
    if args.out:
        write_json_atomic(args.out, results)
    return results


if __name__ == "__main__":
    main()
