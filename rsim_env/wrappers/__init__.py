"""Single-agent views of the rSIM environment (see :mod:`rsim_env.wrappers.single_agent`)."""

from rsim_env.wrappers.single_agent import HashedWordEncoder, PlannerEnv, PlannerFn, ReasonerEnv, ReasonerFn

__all__ = ["HashedWordEncoder", "PlannerEnv", "PlannerFn", "ReasonerEnv", "ReasonerFn"]
