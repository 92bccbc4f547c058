#!/usr/bin/env bash
# Deletes the TPU VM or pod slice (the workdir on /gcs stays): launch/tpu/delete.sh
source "$(dirname "$0")/common.sh"
"${GCLOUD_TPU[@]}" delete "$TPU_NAME" "${WHERE[@]}" --quiet
