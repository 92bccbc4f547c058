"""One process of the per-host data test: python -m tests.scale.shard_driver PORT ID DIR.

Joins a 2-process run on localhost, loads DIR/train.jsonl as a text task (its own
shard only), draws two steps' prompts the way the trainer does, and writes what it
read and what it gathered to DIR/process_ID.json.
"""

import json
import sys
import types

from rljax import distributed


def main(port: str, process_id: str, directory: str):
  distributed.initialize(f"localhost:{port}", 2, int(process_id), timeout_s=60)
  # Imported after joining: nothing may touch the devices before initialize.
  from rljax.rl import rollouts  # pylint: disable=import-outside-toplevel
  from rljax.tasks import base, text_task  # pylint: disable=import-outside-toplevel
  from tests.tasks.text_task_test import _CharTokenizer  # pylint: disable=import-outside-toplevel

  cfg = text_task.DataConfig(source="jsonl", train_path=f"{directory}/train.jsonl",
                             eval_path=f"{directory}/eval.jsonl", prompt_template="plain")
  task = text_task.TextTask(cfg, _CharTokenizer(), 0, 64)
  run = types.SimpleNamespace(rl=types.SimpleNamespace(prompts_per_step=4), prompt_len=64)
  ctx = types.SimpleNamespace(cfg=run, task=task, tok=_CharTokenizer())
  steps = []
  for index in range(2):
    problems, prompt, mask = rollouts._prompts(ctx, index)  # pylint: disable=protected-access
    steps.append({"questions": [p.question for p in problems],
                  "local": [p.question for p in task.train_batch(index, 2)],
                  "prompt_ids": prompt.tolist(), "prompt_mask": mask.tolist()})
  out = {"train": [p.question for p in task.train], "eval": [p.question for p in task.eval_problems],
         "steps": steps, "pool": [p.question for p in base.global_batch(task, 7, 6)]}
  with open(f"{directory}/process_{process_id}.json", "w") as f:
    json.dump(out, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
