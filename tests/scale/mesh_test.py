"""The same work on every mesh of 8 simulated devices as on one device.

One saved base model (an HF directory written once) is loaded onto meshes (data, fsdp,
model) = (8,1,1), (2,4,1), (2,2,2), (1,4,2) and onto a single device. On each: the
weights really are split as the rules say, the sampler's prompts, cache and outputs
are split over data x fsdp, the sampled tokens match the single device's, and one
GRPO update gives the same loss, grad norm and parameters.
"""

import jax
import numpy as np
import pytest
from flax import nnx

from rljax import sharding
from rljax.config import OptimConfig
from rljax.model import hf
from rljax.model.config import get_preset
from rljax.model.transformer import init_model
from rljax.rl import sampler, train_state
from rljax.rl.losses import LossConfig
from rljax.rl.update import make_step_fns

# (2, 2, 2) exercises every axis at once and runs in the fast suite; the others are slow.
MESHES = [pytest.param((8, 1, 1), marks=pytest.mark.slow),
          pytest.param((2, 4, 1), marks=pytest.mark.slow), (2, 2, 2),
          pytest.param((1, 4, 2), marks=pytest.mark.slow)]
SAMPLING = sampler.SamplingConfig(max_new_tokens=24, temperature=1.0, top_k=16, eos_id=1)
Q, G = 8, 8


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("base"))
  hf.save(init_model(get_preset("tiny", qk_norm=False), seed=3), path)
  return path


def _batch():
  rng = np.random.default_rng(0)
  b, p, t = 16, 6, 10
  return {"prompt": rng.integers(2, 64, (b, p)).astype(np.int32),
          "prompt_mask": np.ones((b, p), np.int32),
          "tokens": rng.integers(2, 64, (b, t)).astype(np.int32),
          "mask": (rng.random((b, t)) < 0.9).astype(np.float32),
          "adv": rng.normal(size=(b, t)).astype(np.float32),
          "sft_mask": np.zeros(b, np.float32), "offpolicy": np.zeros(b, np.float32),
          "is_weight": np.ones((b, t), np.float32)}


def _run(path, mesh):
  """Everything the comparisons read, computed on `mesh`."""
  with jax.set_mesh(mesh):
    model = hf.load(path, mesh)
    graphdef, abs_state = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(abs_state)
    # Adam's first step is lr * g / (|g| + eps): for coordinates with a near-zero gradient
    # it magnifies float-summation noise, so lr is kept small enough for a 1e-5 check.
    opt = train_state.make_optimizer(OptimConfig(lr=1e-4, warmup_steps=0), 10)
    sh = train_state.state_shardings(graphdef, abs_state, opt, mesh, with_reference=True)
    state = train_state.new_state(params, opt, sh, 0, with_reference=True)
    fns = make_step_fns(graphdef, opt, sh, mesh, LossConfig(kl_coef=0.04), temperature=1.0,
                        reinit_optimizer=False, on_policy=False, weighted=False)
    prompts = np.random.default_rng(1).integers(2, 64, (Q, 5)).astype(np.int32)
    out = sampler.sample(graphdef, state.params, prompts, np.ones_like(prompts),
                         jax.random.key(7), cfg=SAMPLING, group_size=G)
    cache, _ = sampler.prefill(graphdef, state.params, prompts, np.ones_like(prompts),
                               max_new_tokens=SAMPLING.max_new_tokens, group_size=G)
    batch = _batch()
    logp, _ = fns.score(state.params, {k: batch[k] for k in ("prompt", "prompt_mask",
                                                             "tokens", "mask")})
    batch["ref_logp"] = np.asarray(logp)
    batch["old_logp"] = np.asarray(logp) - 0.3 * batch["adv"] * batch["mask"]  # clips some
    weights = {"q": state.params["blocks"][0]["attn"]["q"],
               "embed": state.params["embed"], "up": state.params["blocks"][1]["mlp"]["up"]}
    layouts = {k: (v.sharding.spec, v.addressable_shards[0].data.shape)
               for k, v in weights.items()}
    whole = [jax.tree_util.keystr(path) for path, v in
             jax.tree_util.tree_flatten_with_path(state.params)[0]
             if v.ndim >= 2 and v.addressable_shards[0].data.shape == v.shape]
    state, metrics = fns.update(state, batch, jax.random.key(0),
                                {"entropy": np.float32(0.0), "kl": np.float32(0.04),
                                 "sft": np.float32(0.0)})
    cache_sh = jax.NamedSharding(mesh, sharding.cache_spec(cache.k.shape[2], mesh))
    return dict(tokens=np.asarray(out.tokens), mask=np.asarray(out.mask),
                tokens_split=out.tokens.sharding.is_equivalent_to(
                    sharding.batch_sharding(mesh, 2), 2),
                tokens_shard=out.tokens.addressable_shards[0].data.shape,
                cache_split=cache.k.sharding.is_equivalent_to(cache_sh, 5),
                cache_shard=cache.k.addressable_shards[0].data.shape, logp=np.asarray(logp),
                layouts=layouts, whole=whole, loss=float(metrics["loss"]),
                grad_norm=float(metrics["grad_norm"]),
                clipfrac=float(metrics["clipfrac"]),
                params=jax.tree.map(np.asarray, state.params))


@pytest.fixture(scope="module")
def single(base_dir):
  return _run(base_dir, sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]))


@pytest.mark.parametrize("shape", MESHES, ids=lambda s: "x".join(map(str, s)))
def test_sharded_work_matches_one_device(base_dir, single, shape):
  data, fsdp, model = shape
  got = _run(base_dir, sharding.make_mesh(*shape))

  # The layouts: weights over fsdp x model, rollouts and cache over data x fsdp.
  assert got["layouts"]["q"][0] == jax.P("fsdp", "model", None)
  assert got["layouts"]["q"][1] == (32 // fsdp, 4 // model, 8)   # [embed, q_heads, head_dim]
  assert got["layouts"]["embed"][1] == (64 // model, 32 // fsdp)   # [vocab, embed]
  assert got["layouts"]["up"][1] == (32 // fsdp, 64 // model)      # [embed, mlp]
  if fsdp * model > 1:  # every matrix is split (biases [heads, head_dim] only over model)
    assert got["whole"] == [] or (fsdp > 1 and model == 1
                                  and all("bias" in p for p in got["whole"])), got["whole"]
  assert got["tokens_split"] and got["cache_split"]
  assert got["tokens_shard"] == (Q * G // (data * fsdp), SAMPLING.max_new_tokens)
  # keys [L, B, K, H, S]: 2 KV heads split over model when model divides them.
  assert got["cache_shard"] == (2, Q * G // (data * fsdp), 2 // model, 8,
                                5 + SAMPLING.max_new_tokens)

  # The numbers.
  agree = np.mean(got["tokens"] == single["tokens"])
  assert agree >= 0.999, agree
  np.testing.assert_allclose(got["logp"], single["logp"], atol=1e-5)
  assert 0 < single["clipfrac"] < 1  # the update's clip is live, not a trivial case
  np.testing.assert_allclose(got["loss"], single["loss"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got["grad_norm"], single["grad_norm"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), got["params"],
               single["params"])


def test_update_on_one_device_samples_on_every_device(base_dir, single):
  """`mesh.train_devices = 1`: the parameters live on the update's one device; the
  sampler, on the rollout mesh, splits its rollouts over all 8 and draws the single
  device's tokens."""
  train, rollout = sharding.train_and_rollout_meshes(1, 1, 1, train_devices=1)
  with jax.set_mesh(train):
    model = hf.load(base_dir, train)
    graphdef, state = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(state)
  prompts = np.random.default_rng(1).integers(2, 64, (Q, 5)).astype(np.int32)
  with jax.set_mesh(train), sharding.entered(rollout, params) as on_rollout:
    out = sampler.sample(graphdef, on_rollout, prompts, np.ones_like(prompts),
                         jax.random.key(7), cfg=SAMPLING, group_size=G)
  assert params["embed"].sharding.device_set == {jax.devices()[0]}
  assert out.tokens.sharding.is_equivalent_to(sharding.batch_sharding(rollout, 2), 2)
  assert out.tokens.addressable_shards[0].data.shape == (Q * G // 8, SAMPLING.max_new_tokens)
  assert np.mean(np.asarray(out.tokens) == single["tokens"]) >= 0.999


def test_a_prompt_count_the_mesh_does_not_divide_is_padded_and_split(base_dir, single):
  """3 prompts on 8 devices: padded to 8 (copies of the last prompt, sampled as finished
  rows and dropped), so each device decodes one prompt's G rows instead of all 3
  prompts' rows replicated on every device; the 3 prompts' rows draw the tokens they draw
  on one device."""
  mesh = sharding.make_mesh(8, 1, 1)
  with jax.set_mesh(mesh):
    graphdef, state = nnx.split(hf.load(base_dir, mesh), nnx.Param)
    params = nnx.to_pure_dict(state)
  prompts = np.random.default_rng(1).integers(2, 64, (Q, 5)).astype(np.int32)[:3]
  args = (graphdef, params, prompts, np.ones_like(prompts), jax.random.key(7))
  with jax.set_mesh(mesh):
    out = sampler.sample(*args, cfg=SAMPLING, group_size=G)
    # The decode loop's per-device token buffer: one prompt's rows, not three prompts'.
    hlo = sampler.sample.lower(*args, cfg=SAMPLING, group_size=G).compile().as_text()
  t = SAMPLING.max_new_tokens
  assert f"s32[{G},{t}]" in hlo and f"s32[{3 * G},{t}]" not in hlo.split("ENTRY")[0]
  assert out.tokens.shape == (3 * G, t)
  assert np.mean(np.asarray(out.tokens) == single["tokens"][:3 * G]) >= 0.999
  np.testing.assert_array_equal(np.asarray(out.mask), single["mask"][:3 * G])


def test_mesh_that_does_not_fit_the_model_is_refused(base_dir):
  mesh = sharding.make_mesh(1, 1, 8)
  with pytest.raises(ValueError, match=r"n_heads = 4 is not divisible by the mesh's model "
                                       r"axis \(8\)"):
    hf.load(base_dir, mesh)
  with pytest.raises(ValueError, match="d_model = 36 is not divisible by the mesh's fsdp"):
    sharding.check_model_fits_mesh(get_preset("tiny", d_model=36), sharding.make_mesh(1, 8, 1))


CONTINUOUS = ("reward_mean", "accuracy", "entropy", "kl", "loss", "grad_norm", "clipfrac",
              "response_length", "cov_mean", "log_ratio_abs_max")


@pytest.mark.slow
def test_runs_on_every_mesh_log_the_same_metrics(tmp_path):
  """Two GRPO steps of the tiny testbed run from one pretrained base on each mesh:
  every continuous metric within 1e-3 of the (8, 1, 1) run's; and with the update on one
  device (`mesh.train_devices = 1`), its rollouts and evaluation on all 8. (The testbed's 23-token
  vocabulary cannot be split over a model axis: tensor parallelism is covered above.)"""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import shutil  # pylint: disable=import-outside-toplevel

  from rljax import experiment  # pylint: disable=import-outside-toplevel
  from rljax.config import MeshConfig  # pylint: disable=import-outside-toplevel
  from rljax.metrics import read_rows  # pylint: disable=import-outside-toplevel
  from tests.trainer_test import tiny_config  # pylint: disable=import-outside-toplevel

  cfg = tiny_config(2, minibatches=2, eval_every=0)
  rows = {}
  # (1, 1, 1, 1): the update on one device, the sampling and evaluation on all 8.
  for i, (data, fsdp, model, *train) in enumerate([(8, 1, 1), (2, 4, 1), (1, 8, 1),
                                                    (1, 1, 1, 1)]):
    workdir = tmp_path / str(i)
    if i:  # the first run's base model and tokenizer, restored onto this mesh
      workdir.mkdir()
      shutil.copytree(tmp_path / "0" / "base", workdir / "base")
      shutil.copy(tmp_path / "0" / "tokenizer.model", workdir / "tokenizer.model")
    experiment.run(dataclasses.replace(cfg, mesh=MeshConfig(data, fsdp, model, *train)),
                   str(workdir))
    rows[(data, fsdp, model, *train)] = read_rows(str(workdir / "metrics.jsonl"))
  want = rows[(8, 1, 1)]
  for shape, got in rows.items():
    for a, b in zip(want, got):
      for k in CONTINUOUS:
        np.testing.assert_allclose(b[k], a[k], atol=1e-3, rtol=1e-3, err_msg=f"{shape} {k}")
