#!/usr/bin/env bash
# Copies this checkout to every worker and installs it with JAX for TPU:
#   TPU_NAME=... ZONE=... [BUCKET=my-bucket] launch/tpu/install.sh
source "$(dirname "$0")/common.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# The working tree as it is (uncommitted changes included), without environments or runs.
ARCHIVE="$(mktemp -d)/rljax.tar.gz"
tar -C "$ROOT" --exclude=.git --exclude='.venv*' --exclude=workdirs -czf "$ARCHIVE" .
"${GCLOUD_TPU[@]}" scp "$ARCHIVE" "$TPU_NAME:~/rljax.tar.gz" "${WHERE[@]}" --worker=all
SETUP="mkdir -p ~/rljax && tar -C ~/rljax -xzf ~/rljax.tar.gz"
SETUP+=" && python3 -m pip install -q -U pip && python3 -m pip install -q -e ~/rljax 'jax[tpu]'"
on_all_workers "$SETUP"
if [[ -n "${BUCKET:-}" ]]; then
  MOUNT="(command -v gcsfuse || (sudo apt-get update -q && sudo apt-get install -yq gcsfuse))"
  MOUNT+=" && sudo mkdir -p /gcs && sudo chown \$USER /gcs"
  MOUNT+=" && (mountpoint -q /gcs || gcsfuse --implicit-dirs $BUCKET /gcs)"
  on_all_workers "$MOUNT"
fi
