"""Sampled completions with their rewards, saved every N steps for inspection.

`traces/step_NNNNNN.jsonl` holds one row per rollout (the first `limit` of the
step): prompt, completion, reward, verified score, extracted answer, and, where
the task can check each step, `steps_verify` and `shortcut` (a right answer
whose steps do not verify: a solution that skipped the reasoning). The report
renders them; they are plain JSON lines for anything else.
"""

from __future__ import annotations

import glob
import json
import os

from rljax.tasks.base import Task


def write(workdir: str, step: int, rollouts, task: Task, limit: int) -> str:
  """Writes step `step`'s traces (atomically); returns the file's path."""
  verify = task.steps_verify
  g = len(rollouts.texts) // len(rollouts.problems)
  rows = []
  for i, text in enumerate(rollouts.texts[:limit]):
    problem = rollouts.problems[i // g]
    row = {"step": step, "prompt": problem.prompt, "completion": text,
           "reward": float(rollouts.rewards[i]), "verified": float(rollouts.verified[i]),
           "answer": task.final_answer(text), "tag": task.tag(problem)}
    if verify is not None:
      row["steps_verify"] = bool(verify(problem, text))
      row["shortcut"] = bool(row["verified"] > 0 and not row["steps_verify"])
    rows.append(row)
  directory = os.path.join(workdir, "traces")
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"step_{step:06d}.jsonl")
  with open(path + ".tmp", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  os.replace(path + ".tmp", path)
  return path


def read(workdir: str) -> dict[int, list[dict]]:
  """{step: rows} of every saved step, in step order."""
  out = {}
  for path in sorted(glob.glob(os.path.join(workdir, "traces", "step_*.jsonl"))):
    with open(path) as f:
      out[int(os.path.basename(path)[5:11])] = [json.loads(line) for line in f if line.strip()]
  return out
