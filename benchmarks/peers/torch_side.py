"""The peers' side of `benchmarks.run`, in their own environment (never imported by rljax):
Hugging Face `generate`, TRL's `GRPOTrainer` step, plain PyTorch forward + backward, and
torch's peak matmul, on the workload of `../workload.json`, one case per process.

  benchmarks/.venv-peers/bin/python benchmarks/peers/torch_side.py {decode64,decode256,trl_step,train,matmul}

How TRL is set up on a CPU (its defaults are bf16 and gradient checkpointing; it builds
the reference from `model.config._name_or_path`, so the random model is saved first):
use_cpu, bf16 off, checkpointing off, one batch of 64 = 8 prompts x 8 generations,
steps_per_generation 1, loss_type "dapo" (token mean), min_new_tokens 64 (EOS
suppressed), top_k 0 (transformers' generate defaults to 50). Steps are timed by a
callback from `on_step_begin` to `on_step_end`; `generate` is wrapped to time the rollout.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from workload import WORKLOAD, grpo_update_flops  # noqa: E402  (no jax in this environment)

G = WORKLOAD["grpo"]
M = WORKLOAD["model"]
SEEDS = WORKLOAD["seeds"]


def qwen2(max_positions: int):
  from transformers import Qwen2Config, Qwen2ForCausalLM
  cfg = Qwen2Config(vocab_size=M["vocab_size"], hidden_size=M["hidden_size"],
                    num_hidden_layers=M["num_hidden_layers"],
                    num_attention_heads=M["num_attention_heads"],
                    num_key_value_heads=M["num_key_value_heads"], head_dim=M["head_dim"],
                    intermediate_size=M["intermediate_size"], hidden_act=M["hidden_act"],
                    rope_theta=M["rope_theta"], rms_norm_eps=M["rms_norm_eps"],
                    max_position_embeddings=max_positions, tie_word_embeddings=True,
                    pad_token_id=0, eos_token_id=1, bos_token_id=None,
                    attn_implementation="sdpa")
  torch.manual_seed(SEEDS["model_init"])
  return Qwen2ForCausalLM(cfg).float().eval()


def prompts() -> torch.Tensor:
  g = torch.Generator().manual_seed(SEEDS["prompts"])
  lo, hi = WORKLOAD["tokens"]["prompt_token_range"]
  return torch.randint(lo, hi, (G["num_prompts"], G["prompt_length"]), generator=g)


def median_of(fn, repeats: int) -> dict:
  t0 = time.perf_counter()
  fn()
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return {"first_s": first, "times_s": times, "median_s": statistics.median(times)}


def case_decode(max_new: int, repeats: int) -> dict:
  model = qwen2(max(M["max_position_embeddings"], 2 * (G["prompt_length"] + max_new)))
  ids = prompts()
  torch.manual_seed(SEEDS["sampling"])

  @torch.no_grad()
  def run():
    return model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                          temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new,
                          min_new_tokens=max_new, num_return_sequences=G["num_generations"],
                          pad_token_id=0, eos_token_id=1)

  r = median_of(run, repeats)
  tokens = G["num_prompts"] * G["num_generations"] * max_new
  return {"new_tokens": max_new, "tokens_per_s": tokens / r["median_s"],
          "tokens_per_s_all": [tokens / t for t in r["times_s"]], **r}


def grpo_loss(logp, ref_logp, adv, mask):
  """The workload's objective, as TRL computes it with one iteration: ratio 1, clipped
  PPO term, k3 KL to the reference, token mean."""
  ratio = torch.exp(logp - logp.detach())
  pg = -torch.min(ratio * adv, torch.clamp(ratio, 1 - G["clip_eps"], 1 + G["clip_eps"]) * adv)
  kl = torch.exp(ref_logp - logp) - (ref_logp - logp) - 1
  return ((pg + G["beta_kl"] * kl) * mask).sum() / mask.sum()


def completion_logp(model, seq, p: int):
  logits = model(seq).logits[:, p - 1:-1].float()
  return torch.log_softmax(logits, -1).gather(-1, seq[:, p:, None])[..., 0]


def case_train(repeats: int, bf16: bool = False) -> dict:
  """Plain PyTorch: reference forward (no grad), policy forward + backward, clip, AdamW;
  `bf16`: both forwards under CPU autocast to bfloat16 (float32 weights and optimizer,
  as rljax's bfloat16 compute dtype)."""
  model = qwen2(M["max_position_embeddings"]).train()
  ref = qwen2(M["max_position_embeddings"]).eval()
  o = WORKLOAD["optimizer"]
  opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=tuple(o["betas"]),
                          eps=o["eps"], weight_decay=o["weight_decay"])
  g = torch.Generator().manual_seed(0)
  b, p, t = G["batch_sequences"], G["prompt_length"], G["max_new_tokens"]
  seq = torch.randint(2, M["vocab_size"], (b, p + t), generator=g)
  adv = torch.randn(b, 1, generator=g).expand(b, t)
  mask = torch.ones(b, t)

  def run():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
      with torch.no_grad():
        ref_logp = completion_logp(ref, seq, p)
      logp = completion_logp(model, seq, p)
    loss = grpo_loss(logp, ref_logp, adv, mask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), o["max_grad_norm"])
    opt.step()

  r = median_of(run, repeats)
  flops = grpo_update_flops(M, b, p, t)["total"]
  return {"model_flops": flops, "flops_per_s": flops / r["median_s"], **r}


def case_trl_step(repeats: int) -> dict:
  from datasets import Dataset
  from tokenizers import Tokenizer, models, pre_tokenizers
  from transformers import PreTrainedTokenizerFast, TrainerCallback
  from trl import GRPOConfig, GRPOTrainer

  work = pathlib.Path(tempfile.mkdtemp(prefix="trl_bench_"))
  vocab = {"<pad>": 0, "<eos>": 1, **{f"t{i}": i for i in range(2, M["vocab_size"])}}
  tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
  tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")
  tok.padding_side = "left"
  model = qwen2(M["max_position_embeddings"])
  model.save_pretrained(work / "model")
  tok.save_pretrained(work / "model")
  texts = [" ".join(f"t{i}" for i in row) for row in prompts().tolist()]
  steps = 1 + repeats
  data = Dataset.from_dict({"prompt": texts * steps})

  def even_fraction(completions, **_):
    out = []
    for c in completions:
      ids = [int(w[1:]) for w in c.split() if w.startswith("t") and w[1:].isdigit()]
      out.append(sum(i % 2 == 0 for i in ids) / max(len(ids), 1))
    return out

  o = WORKLOAD["optimizer"]
  args = GRPOConfig(
      output_dir=str(work / "out"), use_cpu=True, bf16=False, fp16=False,
      gradient_checkpointing=False, per_device_train_batch_size=G["batch_sequences"],
      num_generations=G["num_generations"], steps_per_generation=1,
      gradient_accumulation_steps=1, num_iterations=1, loss_type="dapo",
      max_completion_length=G["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0,
      generation_kwargs={"min_new_tokens": G["max_new_tokens"]}, beta=G["beta_kl"],
      epsilon=G["clip_eps"], learning_rate=o["lr"], adam_beta1=o["betas"][0],
      adam_beta2=o["betas"][1], adam_epsilon=o["eps"], weight_decay=o["weight_decay"],
      max_grad_norm=o["max_grad_norm"], lr_scheduler_type="constant", max_steps=steps,
      logging_steps=1, save_strategy="no", report_to="none", seed=SEEDS["sampling"],
      dataloader_num_workers=0, shuffle_dataset=False)
  trainer = GRPOTrainer(model=str(work / "model"), reward_funcs=even_fraction, args=args,
                        train_dataset=data, processing_class=tok)

  step_times, gen_times = [], []
  generate = trainer.model.generate

  def timed_generate(*a, **k):
    t0 = time.perf_counter()
    out = generate(*a, **k)
    gen_times.append(time.perf_counter() - t0)
    return out

  trainer.model.generate = timed_generate

  class Clock(TrainerCallback):
    def on_step_begin(self, *_, **__):
      self.t0 = time.perf_counter()

    def on_step_end(self, *_, **__):
      step_times.append(time.perf_counter() - self.t0)

  trainer.add_callback(Clock())
  trainer.train()
  times = step_times[1:]
  return {"first_s": step_times[0], "times_s": times, "median_s": statistics.median(times),
          "generate_median_s": statistics.median(gen_times[1:]) if len(gen_times) > 1 else None}


def case_matmul(repeats: int = 10, dtype=torch.float32) -> dict:
  x = torch.randn(2048, 2048).to(dtype)
  r = median_of(lambda: torch.matmul(x, x), repeats)
  return {"flops_per_s": 2 * 2048 ** 3 / r["median_s"], **r}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("case", choices=["decode64", "decode256", "trl_step", "train", "matmul",
                                   "train_bf16", "matmul_bf16"])
  ap.add_argument("--repeats", type=int, default=WORKLOAD["timing"]["repeats"])
  args = ap.parse_args()
  torch.set_num_threads(torch.get_num_threads())
  cases = {"decode64": lambda: case_decode(64, args.repeats),
           "decode256": lambda: case_decode(256, args.repeats),
           "trl_step": lambda: case_trl_step(args.repeats),
           "train": lambda: case_train(args.repeats), "matmul": case_matmul,
           "train_bf16": lambda: case_train(args.repeats, bf16=True),
           "matmul_bf16": lambda: case_matmul(dtype=torch.bfloat16)}
  out = cases[args.case]()
  out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  out["versions"] = _versions()
  print(json.dumps({"side": "peers", "case": args.case, **out}))


def _versions() -> dict:
  from importlib import metadata
  return {p: metadata.version(p) for p in ("torch", "transformers", "trl")}


if __name__ == "__main__":
  main()
