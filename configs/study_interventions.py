r"""A study: plain GRPO against exploration interventions on the testbed, side by side.

  python -m launch.study --config configs/study_interventions.py --workdir DIR
  python -m launch.study --config configs/study_interventions.py:runlocal --workdir DIR
  python -m launch.study --config configs/study_interventions.py \
      --config.study.methods=grpo,clip_cov,kl_cov,prorl --workdir DIR

Every run has the same seed, data stream, base model (pretrained once, shared)
and compute budget (steps x prompts x group size); only the method's settings
(configs/interventions.py) differ. The study evaluates each run, fits the
entropy law and the compute sigmoid, and writes DIR/report/report.{html,md} and
DIR/study.json. Finished runs are reused, so a stopped study continues.
"""

import ml_collections

from configs import interventions

DEFAULT_METHODS = "grpo,entropy_bonus,clip_higher,clip_cov,kl_cov"


def get_config(arg: str = ""):
  runlocal = "runlocal" in (arg or "")
  c = interventions.get_config(arg)  # plain GRPO: the shared settings of every run
  c.rl.steps = 30 if runlocal else 80
  c.rl.eval_every = 5 if runlocal else 10   # held-out points for the compute sigmoid
  c.rl.eval_samples = 4
  c.rl.checkpoint_every = 10
  c.rl.trace_every = 10 if runlocal else 20
  c.study = ml_collections.ConfigDict()
  c.study.methods = DEFAULT_METHODS
  # Each method's settings, nested by section (from configs/interventions.py).
  overrides = {}
  for name, settings in interventions.METHODS.items():
    nested = {}
    for key, value in settings.items():
      section, field = key.split(".") if "." in key else ("top", key)
      nested.setdefault(section, {})[field] = value
    overrides[name] = nested
  c.study.overrides = ml_collections.ConfigDict(overrides)
  return c
