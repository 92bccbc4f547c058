"""The safetensors format, read one tensor at a time and written, with numpy only.

A file is an 8-byte little-endian header length, a JSON header mapping each
tensor name to {dtype, shape, data_offsets}, then the raw bytes. Reading maps
the file and copies out one tensor on request, so a checkpoint larger than host
memory loads tensor by tensor. bfloat16 comes from ml_dtypes (a JAX dependency).
There is no pickle anywhere in the format.
"""

from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
          "BF16": ml_dtypes.bfloat16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
          "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


class SafetensorsFile:
  """Lazy reader: `names()`, `shape(name)`, `get(name) -> np.ndarray` (a copy)."""

  def __init__(self, path: str):
    self.path = path
    try:
      size = os.path.getsize(path)
      with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
          raise ValueError(f"header length {n} exceeds the file size {size}")
        header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as e:
      raise ValueError(f"{path} is not a readable safetensors file: {e}") from e
    self.metadata = header.pop("__metadata__", {})
    self.header = header
    self._data = np.memmap(path, np.uint8, "r", offset=8 + n)

  def names(self) -> list[str]:
    return list(self.header)

  def shape(self, name: str) -> tuple:
    return tuple(self.header[name]["shape"])

  def get(self, name: str) -> np.ndarray:
    info = self.header[name]
    if info["dtype"] not in DTYPES:
      raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {info['dtype']}")
    begin, end = info["data_offsets"]
    raw = np.array(self._data[begin:end])  # copy: never hand out a view of the map
    return raw.view(DTYPES[info["dtype"]]).reshape(info["shape"])


def save(tensors: dict[str, np.ndarray], path: str, metadata: dict | None = None) -> None:
  """Writes `tensors` (name -> array) atomically."""
  header, offset = {}, 0
  arrays = {}
  for name, value in tensors.items():
    a = np.ascontiguousarray(value)
    if a.dtype not in _NAMES:
      raise ValueError(f"cannot store dtype {a.dtype} of {name} in safetensors")
    arrays[name] = a
    header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + a.nbytes]}
    offset += a.nbytes
  if metadata:
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
  with open(path + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(blob)))
    f.write(blob)
    for a in arrays.values():
      f.write(a.tobytes())
  os.replace(path + ".tmp", path)
