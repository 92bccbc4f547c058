r"""GRPO on GSM8K from Qwen2.5-0.5B-Instruct (a local Hugging Face directory).

  python -m launch.train --config configs/gsm8k_qwen2p5_0p5b.py:checkpoint=/ckpt/Qwen2.5-0.5B-Instruct \
      --workdir DIR
  ...:runlocal,checkpoint=DIR   a few CPU steps, to check the set-up

The directory needs config.json, *.safetensors (or a sharded index) and
tokenizer.json / tokenizer_config.json (its chat template is the prompt format).
"""

from configs import real_model


def get_config(arg: str = ""):
  opts = real_model.options(arg)
  return real_model.real_config(opts.get("checkpoint", "checkpoints/Qwen2.5-0.5B-Instruct"), "gsm8k",
                          "chat", "runlocal" in opts, int(opts.get("seed", 0)))
