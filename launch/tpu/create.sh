#!/usr/bin/env bash
# Creates the TPU VM or pod slice: TPU_NAME=... ZONE=... ACCELERATOR=v4-32 launch/tpu/create.sh [--spot]
source "$(dirname "$0")/common.sh"
: "${ACCELERATOR:?set ACCELERATOR (e.g. v4-8, v4-32, v5litepod-16)}"
"${GCLOUD_TPU[@]}" create "$TPU_NAME" "${WHERE[@]}" --accelerator-type "$ACCELERATOR" \
    --version "$RUNTIME" "$@"
