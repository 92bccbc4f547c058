"""The benchmark's arithmetic: model FLOPs by hand, the ratios `benchmarks.run` reports,
and `benchmarks.op_profile`'s labelled op table."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks import dot_shapes, op_profile, run, workload
from configs import testbed

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_forward_flops_by_hand():
  # D=2, H=1, N=2, K=1, F=3, V=5, one layer, one sequence of 2 tokens, 1 scored:
  # per token 2*(D*N*H + 2*D*K*H + N*H*D + 3*D*F) = 2*(4 + 4 + 4 + 18) = 60, so 120;
  # attention 2 * 2 * (2*3/2 causal pairs) * N*H = 24; head 2 * 1 * D * V = 20.
  m = dict(hidden_size=2, head_dim=1, num_attention_heads=2, num_key_value_heads=1,
           intermediate_size=3, vocab_size=5, num_hidden_layers=1)
  assert workload.forward_flops(m, 1, 2, 1) == 120 + 24 + 20
  f = workload.grpo_update_flops(m, 1, 1, 1)
  assert f["policy_fwd_bwd"] == 3 * f["reference_fwd"] and f["total"] == 4 * f["reference_fwd"]


def _runs(**figures):
  return [dict(figures) for _ in range(3)]


def test_summary_ratios_are_rljax_over_the_peer_measured_in_the_run():
  flops = 2 * 2048 ** 3
  results = {
      "rljax": {
          "decode64": _runs(tokens_per_s_all=[300.0, 300.0, 300.0], cpu_devices=2),
          "decode256": _runs(tokens_per_s_all=[200.0, 220.0, 180.0]),
          "step": _runs(times_s=[1.0, 1.0, 1.0], first_s=5.0, compiles_after_first_step=0,
                        split_median_s={"sample_s": 0.5, "update_s": 0.5}),
          "train": _runs(times_s=[2.0] * 3, model_flops=100.0),
          "matmul": _runs(times_s=[0.01] * 3),
          "large": _runs(times_s=[0.5] * 3, model_flops=flops),  # 50x the matmul time
          "train_bf16": _runs(times_s=[1.0] * 3, model_flops=100.0),
          "matmul_bf16": _runs(times_s=[0.005] * 3),
          "decode64_scan": _runs(tokens_per_s_all=[250.0] * 3),
          "step_scan": _runs(times_s=[0.85] * 3, first_s=4.0),
          "train_scan": _runs(times_s=[1.5] * 3),
          "decode64_per_core": _runs(tokens_per_s_all=[360.0] * 3, cpu_devices=2),
          "decode256_per_core": _runs(tokens_per_s_all=[250.0] * 3),
          "step_per_core": _runs(times_s=[0.85] * 3, split_median_s={"sample_s": 0.25}),
          "train_per_core": _runs(times_s=[3.0] * 3),
          "large_per_core": _runs(times_s=[1.0] * 3, model_flops=flops),
          "decode64_one_device": _runs(tokens_per_s_all=[150.0] * 3, cpu_devices=1),
          "decode256_one_device": _runs(tokens_per_s_all=[120.0] * 3),
          "step_one_device": _runs(times_s=[2.0] * 3, split_median_s={"sample_s": 0.75}),
          "train_one_device": _runs(times_s=[2.0] * 3),
          "large_one_device": _runs(times_s=[0.25] * 3, model_flops=flops),
      },
      "peers": {
          "decode64": _runs(tokens_per_s_all=[100.0] * 3),
          "decode256": _runs(tokens_per_s_all=[100.0] * 3),
          "trl_step": _runs(times_s=[1.7] * 3, generate_median_s=0.8),
          "train": _runs(times_s=[3.0] * 3, model_flops=100.0),
          "matmul": _runs(times_s=[0.02] * 3, versions={"torch": "x"}),
          "train_bf16": _runs(times_s=[0.5] * 3, model_flops=100.0),
          "matmul_bf16": _runs(times_s=[0.01] * 3),
      }}
  for side in results.values():
    for runs in side.values():
      for r in runs:
        r.setdefault("peak_rss_mb", 1.0)
  out = run.summarize(results)
  r = out["ratios"]
  assert r["decode_speedup_vs_hf_64"] == pytest.approx(3.0)
  assert r["decode_speedup_vs_hf_256"] == pytest.approx(2.0)
  assert r["decode_speedup_vs_hf"] == pytest.approx(2.0)   # the smaller of the two
  assert r["step_speedup_vs_trl"] == pytest.approx(1.7)
  assert r["train_speedup_vs_torch"] == pytest.approx(1.5)
  assert r["mfu_large"] == pytest.approx(1 / 50)            # 2% of the XLA peak
  assert out["peak_matmul_flops_per_s"]["xla"] == pytest.approx(flops / 0.01)
  assert out["rljax"]["grpo_step_s"]["n"] == 9               # 3 rounds x 3 repeats
  assert out["bfloat16"]["train_speedup_vs_torch"] == pytest.approx(0.5)   # torch 2x faster
  assert out["bfloat16"]["peak_matmul_flops_per_s"]["xla"] == pytest.approx(flops / 0.005)
  scan = out["scan_layers"]["ratios"]   # scanned layers against the same peers
  assert scan["decode_speedup_vs_hf_64"] == pytest.approx(2.5)
  assert scan["step_speedup_vs_trl"] == pytest.approx(2.0)
  assert scan["train_speedup_vs_torch"] == pytest.approx(2.0)
  # The headline runs as `make demo`: one device per core, the update on one of them.
  assert (out["rljax"]["cpu_devices"], out["rljax"]["train_devices"]) == (2, 1)
  one = out["one_device"]   # the variants, against the same peers
  assert (one["cpu_devices"], one["train_devices"]) == (1, -1)
  assert one["grpo_step_split_s"] == {"sample_s": 0.75}
  assert one["ratios"]["decode_speedup_vs_hf_64"] == pytest.approx(1.5)
  assert one["ratios"]["decode_speedup_vs_hf_256"] == pytest.approx(1.2)
  assert one["ratios"]["step_speedup_vs_trl"] == pytest.approx(0.85)
  assert one["ratios"]["train_speedup_vs_torch"] == pytest.approx(1.5)
  assert one["ratios"]["mfu_large"] == pytest.approx(1 / 25)
  core = out["per_core"]
  assert (core["cpu_devices"], core["train_devices"]) == (2, -1)
  assert core["grpo_step_split_s"] == {"sample_s": 0.25}
  assert core["ratios"]["decode_speedup_vs_hf_64"] == pytest.approx(3.6)
  assert core["ratios"]["decode_speedup_vs_hf_256"] == pytest.approx(2.5)
  assert core["ratios"]["step_speedup_vs_trl"] == pytest.approx(2.0)
  assert core["ratios"]["train_speedup_vs_torch"] == pytest.approx(1.0)
  assert core["ratios"]["mfu_large"] == pytest.approx(1 / 100)


def test_the_headline_forward_chains_are_make_demos():
  # The headline runs the workload as `make demo` runs the testbed (configs/testbed.py).
  assert run.FORWARD_CHAINS == testbed.get_config().model.forward_chains > 1


def test_hlo_labels_read_shape_and_jax_op():
  hlo = ('  %ynn_fusion.3 = f32[64,1536]{1,0} fusion(%a, %b), kind=kCustom, calls=%f, '
         'metadata={op_name="jit(sample)/while/body/btd,dcf->btcf/dot_general" stack_frame_id=1}\n'
         '  ROOT %copy.7 = f32[8]{0} copy(%c)\n')
  assert op_profile.hlo_labels(hlo) == {"ynn_fusion.3": ("f32[64,1536]{1,0}", "dot_general"),
                                     "copy.7": ("f32[8]{0}", "")}


def test_control_flow_ops_are_named_for_the_profile_to_leave_out():
  # Lines as XLA:CPU's optimized HLO has them (tuple shapes hold spaces).
  hlo = ('  ROOT %while.94 = (s32[], u32[1]{0}, /*index=5*/u32[]) while(%tuple.78), '
         'condition=%region_21, body=%region_22\n'
         '  %call.14 = (s32[], u32[1]{0}) call(%tuple.69), to_apply=%while.91_computation\n'
         '  %conditional = f32[2]{0} conditional(%p, %a, %b), branch_computations={%x, %y}\n'
         '  %ynn_fusion.3 = f32[64,1536]{1,0} fusion(%a, %b), kind=kCustom, calls=%f\n')
  assert op_profile.control_flow_ops(hlo) == {"while.94", "call.14", "conditional"}


def test_dots_read_from_compiled_hlo_with_their_flops():
  """A product with a transposed operand and a batched one, compiled: each dot's operand
  shapes and dimension numbers as XLA's optimized HLO has them; FLOPs by hand."""
  import jax
  import jax.numpy as jnp
  f = jax.jit(lambda a, b, c, d: (a.T @ b, jnp.einsum("bmk,bkn->bmn", c, d)))
  args = (jnp.ones((6, 3)), jnp.ones((6, 5)), jnp.ones((4, 2, 7)), jnp.ones((4, 7, 9)))
  dots = dot_shapes.hlo_dots(f.lower(*args).compile().as_text())
  by_flops = sorted((dot_shapes.dot_flops(d), d["lhs"], d["rhs"]) for d in dots)
  # a.T @ b: 2 x 3 x 5 x 6; the batched product: 2 x 4 x 2 x 9 x 7.
  assert [x[0] for x in by_flops] == [180, 1008], dots
  plain = next(d for d in dots if dot_shapes.dot_flops(d) == 180)
  assert sorted([plain["lhs"], plain["rhs"]]) == [[6, 3], [6, 5]]
  assert plain["lhs_contracting_dims"] == [0] and plain["rhs_contracting_dims"] == [0]
  batched = next(d for d in dots if d["lhs_batch_dims"])
  assert batched["lhs_batch_dims"] == [0] and batched["rhs_batch_dims"] == [0]


def test_profile_labels_the_decode_ops_from_the_optimized_hlo():
  # One 64-token decode of the workload under the profiler, in its own process (the
  # HLO dump flag must be set before jax starts): every op of the table is labelled.
  out = subprocess.run([sys.executable, "-m", "benchmarks.op_profile", "decode64", "--top", "5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "XLA_FLAGS": ""})
  assert out.returncode == 0, out.stderr[-2000:]
  table = json.loads(out.stdout)
  assert table["wall_s"] > 0 and table["op_core_ms"] > 0
  assert all(op["shape"].startswith(("f32", "s32", "u32", "pred", "(")) for op in table["top_ops"])
  assert table["top_ops"][0]["jax_op"] == "dot_general" and table["top_ops"][0]["calls"] == 64


@pytest.mark.slow
def test_gpu_script_times_the_update_once_per_attention_kernel():
  # The GPU check, shrunk to a CPU (`--tiny`): one update per kernel named; cuDNN's is
  # refused here with its reason in the JSON (and a failing exit), the others measured.
  out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_qwen05b", "--tiny",
                        "--attention", "rljax,xla,cudnn"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "XLA_FLAGS": ""})  # one device, as on the GPU
  assert out.returncode == 1, out.stderr[-2000:]
  res = json.loads(out.stdout)
  assert sorted(res["update"]) == ["rljax", "xla"]
  assert all(0 < res["mfu_vs_measured_peak"][k] < 1.5 for k in ("rljax", "xla"))
  assert res["update"]["rljax"]["model_flops"] == res["update"]["xla"]["model_flops"]
  assert "needs an NVIDIA GPU" in res["update_error_cudnn"]
  assert res["decode"]["tokens_per_s"] > 0 and "decode_error" not in res


@pytest.mark.slow
def test_agent_rollout_script_times_the_turns_and_observations(tmp_path):
  out = subprocess.run([sys.executable, "-m", "benchmarks.agent_rollout", "--workdir",
                        str(tmp_path), "--layouts", "2", "--group", "2", "--repeats", "2",
                        "--cold_start_steps", "5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads(out.stdout)
  assert res["rows"] == 4 and len(res["times_s"]) == 2 and res["cache_slots"] == 32 + 320
  assert 0 < res["split_s"]["decode_turn"] and 0 < res["split_s"]["prefill_chunk"]
  assert sum(res["split_s"].values()) < res["median_s"] * 1.05
  assert min(res["model_tokens_per_rollout"]) > 0
