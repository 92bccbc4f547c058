import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithThirdParty(build_py):
  """Ships third_party/ (the GSM8K and MATH-500 copies with their licenses) inside the
  package as rljax/_third_party, so an installed rljax finds them (rljax.tasks.sources)."""

  def run(self):
    super().run()
    here = os.path.dirname(os.path.abspath(__file__))
    shutil.copytree(os.path.join(here, "third_party"),
                    os.path.join(self.build_lib, "rljax", "_third_party"), dirs_exist_ok=True)


setup(
    name="rljax",
    version="0.1.0",
    description="JAX research codebase for RL of language models for reasoning: "
                "GRPO, exploration interventions, and instruments that measure the ceiling.",
    python_requires=">=3.11",
    packages=find_packages(include=["rljax", "rljax.*", "launch", "launch.*", "configs"]),
    cmdclass={"build_py": BuildPyWithThirdParty},
    install_requires=[
        "jax>=0.8.0",
        "flax>=0.12.0",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11.20",
        "ml-collections>=1.0.0",
        "chex>=0.1.90",
        "sentencepiece>=0.2.0",
        "numpy>=1.26",
        "absl-py>=2.1",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "matplotlib>=3.8",
        "scipy>=1.11",
    ],
    extras_require={
        "test": ["pytest>=8.0", "pytest-xdist>=3.5", "hypothesis>=6.100", "nbclient>=0.10", "nbformat>=5.10",
                 "ipykernel>=6.29", "tokenizers>=0.19", "jinja2>=3.1", "gguf>=0.10",
                 "math-verify>=0.7", "reasoning-gym>=0.1.20", "tensorflow-datasets>=4.9",
                 "array_record>=0.5", "importlib_resources>=6.0", "pyarrow>=14",
                 "textarena==0.7.4"],
        "hf": ["tokenizers>=0.19", "jinja2>=3.1", "gguf>=0.10"],
        "math": ["math-verify>=0.7", "reasoning-gym>=0.1.20"],
        # ArrayRecord datasets read without TensorFlow (tfds.data_source).
        "tfds": ["tensorflow-datasets>=4.9", "array_record>=0.5", "importlib_resources>=6.0"],
        "parquet": ["pyarrow>=14"],
        # Text games behind the Env protocol (rljax.envs.textarena_env); pure Python.
        "textarena": ["textarena==0.7.4"],
    },
)
