"""Per-step metrics: `metrics.jsonl` rows, TensorBoard scalars, and a console progress bar.

On resume the JSONL log is cut back to the restored step, so a run that stopped
after its last checkpoint ends with no duplicated and no missing rows. In a
multi-process run only process 0 writes (the metrics are the same on every process).
"""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np


def _plain(value):
  if isinstance(value, (np.generic, np.ndarray)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


class MetricsWriter:
  """Appends one JSON row per step to `path` and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str, name: str = "metrics", resume_step: int = 0):
    self.path = os.path.join(workdir, f"{name}.jsonl")
    self.tb = None
    if jax.process_index() != 0:
      return
    os.makedirs(workdir, exist_ok=True)
    self._truncate_after(resume_step)
    from tensorboardX import SummaryWriter  # heavy import, only when writing
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard", name))

  def _truncate_after(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      rows = [line for line in f if line.strip()]
    keep = []
    for line in rows:
      try:
        if json.loads(line)["step"] <= step:
          keep.append(line)
      except (json.JSONDecodeError, KeyError):
        break  # a torn last line from a crash: drop it and everything after
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(keep)
    os.replace(tmp, self.path)

  def write(self, step: int, metrics: dict) -> None:
    if self.tb is None:
      return
    row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for k, v in row.items():
      if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
        self.tb.add_scalar(k, v, step)
    self.tb.flush()

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


def read_rows(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
