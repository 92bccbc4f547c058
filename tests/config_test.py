"""A bad config fails before anything is compiled, naming the field and the valid choices."""

import importlib.util
import os

import pytest

from rljax.config import from_config_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(arg=""):
  spec = importlib.util.spec_from_file_location("testbed_cfg", f"{ROOT}/configs/testbed.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def test_default_and_runlocal_build():
  cfg = from_config_dict(load())
  assert cfg.rl.group_size == 8 and cfg.loss.agg == "token-mean"
  assert from_config_dict(load("runlocal")).rl.steps < cfg.rl.steps


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.loss.update(agg="token-sum"), "seq-mean-token-mean"),
    (lambda c: c.rl.update(advantage="gae"), "drgrpo"),
    (lambda c: c.model.update(preset="gpt9"), "qwen2.5-0.5b"),
    (lambda c: c.task.update(families=("arith", "chess")), "solve"),
    (lambda c: c.rl.optim.update(schedule="step"), "cosine"),
    (lambda c: c.sampling.update(top_p=0.0), "top_p"),
    (lambda c: c.rl.update(group_size=1), "group_size"),
    (lambda c: c.rl.update(minibatches=3), "minibatches"),
])
def test_bad_choice(mutate, message):
  c = load()
  mutate(c)
  with pytest.raises(ValueError, match=message):
    from_config_dict(c)


def test_unknown_field_names_path_and_valid_fields():
  c = load().to_dict()
  c["rl"]["stepz"] = 3
  with pytest.raises(ValueError, match=r"rl\.stepz.*prompts_per_step"):
    from_config_dict(c)


def test_wrong_type_names_field():
  c = load().to_dict()
  c["rl"]["group_size"] = "eight"
  with pytest.raises(TypeError, match=r"rl\.group_size: expected int"):
    from_config_dict(c)
  c = load().to_dict()
  c["loss"]["eps_high"] = True
  with pytest.raises(TypeError, match=r"loss\.eps_high"):
    from_config_dict(c)


def test_batch_not_divisible_by_mesh():
  from rljax.config import check_mesh
  cfg = from_config_dict(load())
  check_mesh(cfg, 8)
  with pytest.raises(ValueError, match="not divisible by the 3 devices"):
    check_mesh(cfg, 3)


@pytest.mark.parametrize("name", ["clip_cov", "kl_cov", "gppo", "gspo", "cispo", "gmpo", "sapo",
                                  "gpg"])
def test_every_policy_loss_is_a_config_choice(name):
  c = load()
  c.loss.policy_loss = name
  assert from_config_dict(c).loss.policy_loss == name


def test_every_intervention_config_builds():
  spec = importlib.util.spec_from_file_location("icfg", f"{ROOT}/configs/interventions.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  for method in mod.METHODS:
    cfg = from_config_dict(mod.get_config(f"method={method},runlocal"))
    assert cfg.rl.steps == 10
  with pytest.raises(ValueError, match="clip_cov"):
    mod.get_config("method=nope")
