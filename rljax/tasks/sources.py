"""Where a real task's problems come from: one entry of `SOURCES` per data source.

Each source loads (train rows, held-out rows) for a `DataConfig`, a seed and a
`Shard`, as dicts {question, answer, tag[, solution, entry]}, and names its verifier.
The training rows are the shard's only: in a multi-host run each process reads its
own part (JSON-lines: only its lines are parsed; parquet: only the row groups its
rows lie in; TFDS: only its records, by random access). The held-out split is read
whole by every process (it is small, and the evaluation splits its samples). GSM8K
and MATH-500 are read from the copies shipped with the package (third_party/,
installed as `rljax/_third_party`), or from `data.train_path` / `data.eval_path`.
Adding a dataset is one loader here (and its config, e.g. configs/gsm8k_*.py).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable, NamedTuple

from rljax import prng
from rljax.distributed import Shard
from rljax.rewards.math_answers import extract_answer, math_reward
from rljax.tasks import jsonl

_HERE = os.path.dirname(os.path.abspath(__file__))
# A source checkout has third_party/ at its root; an installed package ships it inside.
_DATA_DIRS = (os.path.join(_HERE, "..", "_third_party", "data"),
              os.path.join(_HERE, "..", "..", "third_party", "data"))


def data_dir() -> str:
  """The directory of the shipped datasets (third_party/data)."""
  for d in _DATA_DIRS:
    if os.path.isdir(d):
      return os.path.normpath(d)
  raise FileNotFoundError(f"the shipped datasets are missing; looked in {list(_DATA_DIRS)}")


def _gsm8k_answer(text: str) -> str:
  return text.rsplit("####", 1)[-1].strip().replace(",", "")


def _gsm8k_split(cfg, path: str, split: str, shard: Shard | None) -> list[dict]:
  path = path or os.path.join(data_dir(), "gsm8k", f"{split}.jsonl")
  rows, _ = jsonl.read_jsonl(path, ("question", "answer"), "question",
                             skip_bad=cfg.skip_bad_rows, shard=shard)
  return [{"question": r["question"], "answer": _gsm8k_answer(r["answer"]), "tag": "gsm8k",
           "solution": r["answer"].rsplit("####", 1)[0]
                       + f"\\boxed{{{_gsm8k_answer(r['answer'])}}}"}
          for r in rows]


def _gsm8k(cfg, seed: int, shard: Shard = Shard()):
  del seed
  return (_gsm8k_split(cfg, cfg.train_path, "train", shard),
          _gsm8k_split(cfg, cfg.eval_path, "test", None))


def _take(rows: list, shard: Shard) -> list:
  """The shard's rows of a list every process holds whole (small or generated sets)."""
  r = shard.rows(len(rows))
  return rows[r.start:r.stop]


def _math500(cfg, seed: int, shard: Shard = Shard()):
  """MATH-500 is a test set: train on all but the held-out part (eval_size, else 1/5)."""
  del seed
  path = cfg.eval_path or os.path.join(data_dir(), "math500", "test.jsonl")
  rows, _ = jsonl.read_jsonl(path, ("problem", "answer"), "problem", skip_bad=cfg.skip_bad_rows)
  held = [{"question": r["problem"], "answer": r["answer"], "solution": r.get("solution"),
           "tag": f"level{r.get('level', '?')}"} for r in rows]
  n = cfg.eval_size or len(held) // 5
  return _take(held[n:], shard), held[:n]


def _fields(cfg, rows) -> list[dict]:
  return [{"question": str(r[cfg.question_field]), "answer": str(r[cfg.answer_field]),
           "tag": cfg.source} for r in rows]


def _jsonl(cfg, seed: int, shard: Shard = Shard()):
  del seed
  read = lambda path, shard: jsonl.read_jsonl(
      path, (cfg.question_field, cfg.answer_field), cfg.question_field,
      skip_bad=cfg.skip_bad_rows, shard=shard)[0]
  return _fields(cfg, read(cfg.train_path, shard)), _fields(cfg, read(cfg.eval_path, None))


def _parquet_rows(path: str, columns: list[str], shard: Shard) -> list[dict]:
  """The shard's rows of a parquet file, reading only the row groups they lie in."""
  import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  f = pq.ParquetFile(path)
  meta, out, first = f.metadata, [], 0
  wanted = shard.rows(meta.num_rows)
  for g in range(meta.num_row_groups):
    n = meta.row_group(g).num_rows
    lo, hi = max(wanted.start, first), min(wanted.stop, first + n)
    if lo < hi:
      out += f.read_row_group(g, columns=columns).slice(lo - first, hi - lo).to_pylist()
    first += n
  return out


def _parquet(cfg, seed: int, shard: Shard = Shard()):
  del seed
  if importlib.util.find_spec("pyarrow") is None:
    raise ValueError("data.source 'parquet' needs pyarrow: pip install 'rljax[parquet]'")
  columns = [cfg.question_field, cfg.answer_field]
  return (_fields(cfg, _parquet_rows(cfg.train_path, columns, shard)),
          _fields(cfg, _parquet_rows(cfg.eval_path, columns, Shard())))


def _tfds(cfg, seed: int, shard: Shard = Shard()):
  """A prepared TFDS dataset ("name[/config][:split]") in ArrayRecord format, read by
  `tfds.data_source` (random access, no TensorFlow). A TFRecord-only dataset is rebuilt
  once with `tfds build NAME --file_format=array_record`."""
  del seed
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ValueError("data.source 'tfds' needs tensorflow-datasets: "
                     "pip install 'rljax[tfds]'") from e
  data_dir = cfg.tfds_data_dir or None
  decode = lambda ex: {k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()}

  def read(path, default_split, shard):
    name, _, split = path.partition(":")
    source = tfds.data_source(name, split=split or default_split, data_dir=data_dir)
    return [decode(source[i]) for i in shard.rows(len(source))]
  return (_fields(cfg, read(cfg.train_path, "train", shard)),
          _fields(cfg, read(cfg.eval_path, "test", Shard())))


def _reasoning_gym_rows(cfg, size: int, seed: int) -> list[dict]:
  import reasoning_gym  # pylint: disable=import-outside-toplevel
  ds = reasoning_gym.create_dataset(cfg.reasoning_gym_task, size=size, seed=seed)
  return [{"question": e["question"], "answer": str(e["answer"]),
           "tag": cfg.reasoning_gym_task, "entry": dict(e)} for e in ds]


def _reasoning_gym(cfg, seed: int, shard: Shard = Shard()):
  """Generated train and held-out sets; training questions that a held-out one repeats
  are dropped (two seeds of one generator can produce the same problem). Every process
  generates the set and keeps its shard."""
  held = _reasoning_gym_rows(cfg, cfg.eval_size or 200, prng.heldout_data_seed(seed))
  seen = {_normalised(r["question"]) for r in held}
  train = [r for r in _reasoning_gym_rows(cfg, cfg.train_size, seed)
           if _normalised(r["question"]) not in seen]
  return _take(train, shard), held


def _normalised(question: str) -> str:
  return " ".join(question.split()).lower()


def reasoning_gym_reward(problem, completion: str) -> float:
  """reasoning-gym's own scorer on the completion's final (boxed) answer."""
  import reasoning_gym  # pylint: disable=import-outside-toplevel
  answer = extract_answer(completion)
  if answer is None:
    return 0.0
  entry = problem.entry
  return float(reasoning_gym.get_score_answer_fn(entry["metadata"]["source_dataset"])(
      answer, entry))




class Source(NamedTuple):
  """A data source: `load(cfg, seed, shard=Shard()) -> (the shard's train rows, held-out rows)`
  and its verifier."""

  load: Callable
  reward: Callable


SOURCES = {
    "gsm8k": Source(_gsm8k, math_reward),
    "math500": Source(_math500, math_reward),
    "jsonl": Source(_jsonl, math_reward),
    "parquet": Source(_parquet, math_reward),
    "tfds": Source(_tfds, math_reward),
    "reasoning_gym": Source(_reasoning_gym, reasoning_gym_reward),
}
