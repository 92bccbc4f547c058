"""launch/tpu/*.sh against a fake `gcloud` that records its arguments."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TPU = os.path.join(ROOT, "launch", "tpu")
FAKE = """#!/usr/bin/env bash
printf '%s\\x1f' "$@" >> "$GCLOUD_LOG"
echo >> "$GCLOUD_LOG"
"""


@pytest.fixture
def gcloud(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "gcloud").write_text(FAKE)
  (bin_dir / "gcloud").chmod(0o755)
  log = tmp_path / "gcloud.log"
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", GCLOUD_LOG=str(log),
             TPU_NAME="rl-pod", ZONE="us-central2-b", ACCELERATOR="v4-32", PROJECT="proj")

  def run(script, *args, **extra):
    proc = subprocess.run([os.path.join(TPU, script), *args], env={**env, **extra},
                          capture_output=True, text=True, timeout=60)
    calls = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()] \
        if log.exists() else []
    log.unlink(missing_ok=True)
    return proc, calls
  return run


def test_create_install_run_logs_sweep_delete(gcloud):
  proc, calls = gcloud("create.sh", "--spot")
  assert proc.returncode == 0, proc.stderr
  assert calls == [["compute", "tpus", "tpu-vm", "create", "rl-pod", "--zone", "us-central2-b",
                    "--project", "proj", "--accelerator-type", "v4-32",
                    "--version", "tpu-ubuntu2204-base", "--spot"]]

  proc, calls = gcloud("install.sh", BUCKET="my-bucket")
  assert proc.returncode == 0, proc.stderr
  scp, install, mount = calls
  assert scp[3] == "scp" and scp[-1] == "--worker=all" and scp[5] == "rl-pod:~/rljax.tar.gz"
  for call in (install, mount):
    assert call[3] == "ssh" and "--worker=all" in call
  assert "pip install -q -e ~/rljax 'jax[tpu]'" in install[-1]
  assert "gcsfuse --implicit-dirs my-bucket /gcs" in mount[-1]

  proc, calls = gcloud("run.sh", "configs/gsm8k_qwen2p5_7b.py:checkpoint=/gcs/ckpt",
                       "/gcs/runs/a", "--config.seed=3")
  assert proc.returncode == 0, proc.stderr
  (run,) = calls
  assert "--worker=all" in run   # every worker, never worker 0 alone
  command = run[-1]
  assert "python3 -m launch.train --config configs/gsm8k_qwen2p5_7b.py:checkpoint=/gcs/ckpt" \
      in command and "--workdir /gcs/runs/a" in command
  assert "--distributed --config.seed=3" in command and command.rstrip().endswith("&")

  proc, calls = gcloud("logs.sh")
  assert calls[0][3] == "ssh" and "--worker=0" in calls[0] and "tail" in calls[0][-1]

  proc, calls = gcloud("sweep.sh", "configs/testbed.py", "/gcs/sweep", "--config.seed=0",
                       "--config.seed=1 --config.loss.entropy_coef=0.001")
  assert proc.returncode == 0, proc.stderr
  assert len(calls) == 2 and all("--worker=all" in c for c in calls)
  assert "--workdir /gcs/sweep/1 --distributed --config.seed=1 --config.loss.entropy_coef" \
      in calls[1][-1]

  proc, calls = gcloud("delete.sh")
  assert calls == [["compute", "tpus", "tpu-vm", "delete", "rl-pod", "--zone", "us-central2-b",
                    "--project", "proj", "--quiet"]]


def test_missing_settings_are_named(gcloud):
  proc, calls = gcloud("create.sh", TPU_NAME="")
  assert proc.returncode != 0 and "set TPU_NAME" in proc.stderr and not calls
  proc, calls = gcloud("run.sh", "configs/testbed.py")
  assert proc.returncode == 2 and "usage" in proc.stderr and not calls
