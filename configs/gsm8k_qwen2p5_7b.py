r"""GRPO on GSM8K from Qwen2.5-7B-Instruct on a pod slice (32 chips: fsdp 8 x model 4).

  python -m launch.train --config configs/gsm8k_qwen2p5_7b.py:checkpoint=/ckpt/Qwen2.5-7B-Instruct \
      --workdir gs://BUCKET/run --distributed          # on every worker (launch/tpu/)
  python -m launch.train --config configs/gsm8k_qwen2p5_7b.py --workdir /tmp/plan \
      --dry_run --cpu_devices 32 --device_memory_gib 32   # size it first, on a laptop

The weights (float32 masters, Adam moments, the reference) are split 32 ways; the
sampler gathers them over fsdp once per step in bfloat16 (split 4 ways over model, the
28 query / 4 KV heads and the vocab), so decoding never all-gathers per token.
"""

from configs import real_model


def get_config(arg: str = ""):
  opts = real_model.options(arg)
  c = real_model.real_config(opts.get("checkpoint", "checkpoints/Qwen2.5-7B-Instruct"), "gsm8k",
                             "chat", "runlocal" in opts, int(opts.get("seed", 0)),
                             preset="qwen2.5-7b")
  if "runlocal" not in opts:
    c.mesh.update(data=1, fsdp=-1, model=4)
    c.rl.update(prompts_per_step=64, group_size=8, minibatches=8)
  return c
