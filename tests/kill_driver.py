"""A testbed run in its own process, for the SIGKILL tests: python -m tests.kill_driver DIR.

With RLJAX_TEST_KILL_IN_WRITE=N the process kills itself (SIGKILL) while writing
checkpoint N of the RL run: after every file is written, before the atomic rename
that commits it, the moment a crash is most likely to corrupt a checkpoint.
"""

import os
import signal
import sys

from orbax.checkpoint._src.path import atomicity

from rljax import experiment
from tests.trainer_test import RESUME_INTERVENTIONS, tiny_config


def kill_config():
  """Long enough pretraining and RL to be killed in each phase; checkpoints every 2 steps."""
  c = tiny_config(8, RESUME_INTERVENTIONS, dict(entropy_coef=0.01), checkpoint_every=2,
                  eval_every=4)
  pre = c.pretrain.__class__(**{**c.pretrain.__dict__, "clean_max_steps": 24,
                                "noisy_steps": 16, "log_every": 2, "checkpoint_every": 4})
  return c.__class__(**{**c.__dict__, "pretrain": pre})


def _kill_in_write(step: str):
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def killing_finalize(self, *args, **kwargs):
    if self._final_path.name == step and self._final_path.parent.name == "checkpoints":
      os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self, *args, **kwargs)

  atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize


if __name__ == "__main__":
  if os.environ.get("RLJAX_TEST_KILL_IN_WRITE"):
    _kill_in_write(os.environ["RLJAX_TEST_KILL_IN_WRITE"])
  experiment.run(kill_config(), sys.argv[1])
