r"""GRPO on GSM8K from Qwen2.5-0.5B-Instruct (a local Hugging Face directory).

  python -m launch.train --config configs/gsm8k_qwen2p5_0p5b.py:checkpoint=/ckpt/Qwen2.5-0.5B-Instruct \
      --workdir DIR
  ...:runlocal,checkpoint=DIR   a few CPU steps, to check the set-up

The directory needs config.json, *.safetensors (or a sharded index) and
tokenizer.json / tokenizer_config.json (its chat template is the prompt format).
"""

import importlib.util
import os


def _real():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "real_model.py")
  spec = importlib.util.spec_from_file_location("rljax_real_model_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def get_config(arg: str = ""):
  real = _real()
  opts = real.options(arg)
  return real.real_config(opts.get("checkpoint", "checkpoints/Qwen2.5-0.5B-Instruct"), "gsm8k",
                          "chat", "runlocal" in opts, int(opts.get("seed", 0)))
