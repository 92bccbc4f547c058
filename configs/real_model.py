r"""Shared settings of the real-model recipes (configs/gsm8k_*.py, configs/math_*.py).

`real_config(checkpoint, source, ...)` starts from the testbed's config (its RL,
loss, sampling and intervention sections) and switches the model to real
weights and the task to a real dataset. `runlocal` shrinks everything so one
GRPO step runs in about a minute on a laptop CPU.
"""

from configs import testbed


def options(arg: str) -> dict:
  return dict(kv.split("=", 1) if "=" in kv else (kv, "1")
              for kv in (arg.split(",") if arg else []))


def real_config(checkpoint: str, source: str, prompt_template: str, runlocal: bool,
                seed: int = 0, preset: str = "qwen2.5-0.5b"):
  """`preset` names the checkpoint's architecture for `--dry_run` before it is downloaded
  (the checkpoint's own config.json is used once it is on disk)."""
  c = testbed.get_config(f"v1,seed={seed}")   # v1: the task dials stay at their defaults
  c.model.checkpoint = checkpoint
  c.model.preset = preset
  c.model.dtype = "bfloat16"
  c.model.scan_layers = not runlocal   # compile time independent of depth
  c.model.remat = "full"
  c.data.source = source
  c.data.prompt_template = prompt_template
  c.prompt_len, c.completion_len = 512, 1024
  c.rl.update(steps=200, prompts_per_step=64, group_size=8, minibatches=4, eval_every=25,
              eval_samples=1, checkpoint_every=25, trace_every=25, reward_timeout_s=10.0)
  c.rl.optim.update(lr=1e-6, grad_clip=1.0, weight_decay=0.0)
  c.loss.update(eps_high=0.28, kl_coef=0.0, agg="token-mean")
  c.intervention.mask_truncated = True
  c.mesh.update(data=1, fsdp=-1, model=1)   # FSDP over all devices
  c.eval.update(n_samples=8, batch_rollouts=512)
  if runlocal:
    c.model.dtype = "float32"
    c.model.remat = "none"
    c.prompt_len, c.completion_len = 160, 48
    c.data.eval_size = 8
    c.rl.update(steps=3, prompts_per_step=2, group_size=4, minibatches=1, eval_every=0,
                checkpoint_every=1, trace_every=1, trace_rollouts=8)
    c.rl.optim.lr = 1e-5
    c.mesh.update(data=-1, fsdp=1)
    c.eval.update(n_samples=2, batch_rollouts=16)
  c.sampling.max_new_tokens = c.completion_len
  return c
