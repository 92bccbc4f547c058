"""A bad config fails before anything is compiled, naming the field and the valid choices."""

import dataclasses

import pytest

from configs import interventions, testbed
from rljax.config import ExperimentConfig, from_config_dict
from rljax.rl import losses



def load(arg=""):
  return testbed.get_config(arg)


def test_default_and_runlocal_build():
  cfg = from_config_dict(load())
  assert cfg.rl.group_size == 8 and cfg.loss.agg == "token-mean"
  assert from_config_dict(load("runlocal")).rl.steps < cfg.rl.steps


def test_the_default_is_testbed_v2_and_v1_stays_available():
  v2, v1 = from_config_dict(load()), from_config_dict(load("v1"))
  assert v2.task.digits == 4 and "mul" in v2.task.unseen_families
  assert v1.task.digits == 2 and v1.task.families == ("arith", "solve")
  assert from_config_dict(interventions.get_config("method=grpo")).task == v1.task
  assert from_config_dict(interventions.get_config("method=grpo,v2")).task == v2.task
  assert from_config_dict(load("size=l")).model.preset == "testbed-l"
  with pytest.raises(ValueError, match="valid"):
    load("size=xl")


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
  mod = interventions
  for method in mod.METHODS:
    cfg = from_config_dict(mod.get_config(f"method={method},runlocal"))
    assert cfg.rl.steps == 10
  with pytest.raises(ValueError, match="clip_cov"):
    mod.get_config("method=nope")


def _walk(default, file_values: dict, path: str = ""):
  """(field path, file value, dataclass default) of every leaf field under `default`."""
  for f in dataclasses.fields(default):
    value = getattr(default, f.name)
    here = f"{path}{f.name}"
    if dataclasses.is_dataclass(value):
      yield from _walk(value, file_values.get(f.name, {}), here + ".")
    else:
      file_value = file_values.get(f.name, _MISSING)
      yield here, tuple(file_value) if isinstance(file_value, list) else file_value, value


_MISSING = object()


def test_testbed_config_file_is_the_one_source_of_every_field():
  """Every dataclass field appears in configs/testbed.py with the dataclass's default
  (as its sections write them: v1; the v2 default overrides some, in `_v2`)."""
  values = load("v1").to_dict()
  missing = [p for p, v, _ in _walk(ExperimentConfig(), values) if v is _MISSING]
  differ = [(p, v, d) for p, v, d in _walk(ExperimentConfig(), values)
            if v is not _MISSING and v != d]
  assert not missing, f"fields missing from configs/testbed.py: {missing}"
  assert not differ, f"file value != dataclass default (path, file, class): {differ}"
  # The nested defaults agree too: PretrainConfig's optimizer is the file's.
  assert ExperimentConfig().pretrain.optim.b2 == values["pretrain"]["optim"]["b2"] == 0.99


def test_every_policy_loss_hyperparameter_is_a_loss_config_field():
  fields = {f.name for f in dataclasses.fields(losses.LossConfig)}
  for name in losses.POLICY_LOSSES:
    cfg = losses.LossConfig(policy_loss=name)
    assert set(cfg.hparams()) <= fields and {"agg", "norm_constant"} <= set(cfg.hparams())


def test_overriding_a_formerly_missing_field():
  c = load()
  c.intervention.dro_temperature = 0.2
  c.loss.rlplus_gamma = 0.25
  cfg = from_config_dict(c)
  assert cfg.intervention.dro_temperature == 0.2 and cfg.loss.rlplus_gamma == 0.25
