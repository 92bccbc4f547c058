"""`hf.save` writes the family the model is, never a config that contradicts its tensors."""

import json

import pytest

from rljax.model import hf
from rljax.model.config import get_preset
from rljax.model.transformer import init_model


@pytest.mark.parametrize("overrides,family", [
    (dict(qkv_bias=True, qk_norm=False), "qwen2"), (dict(qkv_bias=False, qk_norm=True), "qwen3"),
    (dict(qkv_bias=False, qk_norm=False), "llama")])
def test_save_infers_the_family_and_refuses_a_contradiction(tmp_path, overrides, family):
  cfg = get_preset("tiny", vocab_size=32, **overrides)
  assert hf.infer_family(cfg) == family
  model = init_model(cfg, 0)
  hf.save(model, str(tmp_path / "auto"))
  with open(tmp_path / "auto" / "config.json") as f:
    assert json.load(f)["model_type"] == family
  wrong = "qwen3" if family != "qwen3" else "qwen2"
  with pytest.raises(ValueError, match="contradicts"):
    hf.save(model, str(tmp_path / "wrong"), family=wrong)


def test_a_model_no_family_describes_is_refused(tmp_path):
  cfg = get_preset("tiny", vocab_size=32, qkv_bias=True, qk_norm=True)
  with pytest.raises(ValueError, match="no checkpoint family"):
    hf.save(init_model(cfg, 0), str(tmp_path))
