"""Agents: multi-turn RL on environments that answer back (GRPO outcome-only or RLVMR).

config.py: the agent run's frozen config; demos.py: the oracle's tagged trajectories
as token rows (cold start); credit.py: trajectory and turn advantages as token
advantages; pipeline.py: cold start -> base eval -> RL -> final eval -> summary.
"""
