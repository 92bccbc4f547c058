r"""The agent study: RLVMR vs outcome-only GRPO on the same budget, 3 seeds.

  python -m launch.study --config configs/agent_study.py --workdir /tmp/rljax_agent_study

Each run is `configs/agent.py` with the study's method and seed (about 6 minutes of RL
each after a 4-minute cold start per seed on a 2-core CPU); per seed the methods share
one cold-started base. `:runlocal` makes every run the agent config's runlocal.
"""

from configs import agent


def get_config(arg: str = ""):
  c = agent.get_config("runlocal" if "runlocal" in arg else "")
  c.study = dict(methods="grpo,rlvmr", seeds="0,1,2")
  return c
