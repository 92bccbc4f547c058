r"""GRPO on MATH from Qwen2.5-Math-1.5B (a local Hugging Face directory), SimpleRL-Zoo style.

Held-out: 100 MATH-500 problems; training: the other 400 (MATH-500 is the only
MATH split shipped in third_party/data; point data.train_path at a MATH train
jsonl with `problem`/`answer` fields for the full recipe). Qwen2.5-Math's
system prompt asks for the answer in \boxed{}; rewards use math-verify.

  python -m launch.train --config configs/math_qwen2p5_math_1p5b.py:checkpoint=/ckpt/Qwen2.5-Math-1.5B \
      --workdir DIR
"""

from configs import real_model


def get_config(arg: str = ""):
  opts = real_model.options(arg)
  c = real_model.real_config(opts.get("checkpoint", "checkpoints/Qwen2.5-Math-1.5B"), "math500",
                       "qwen_math", "runlocal" in opts, int(opts.get("seed", 0)),
                       preset="qwen2.5-1.5b")
  c.data.eval_size = 8 if "runlocal" in opts else 100
  c.prompt_len = 160 if "runlocal" in opts else 1024
  c.completion_len = c.sampling.max_new_tokens = 48 if "runlocal" in opts else 3000
  if "runlocal" not in opts:
    c.rl.update(prompts_per_step=128, group_size=8)
  return c
