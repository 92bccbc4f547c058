#!/usr/bin/env bash
# Follows process 0's log (it writes metrics and summaries): launch/tpu/logs.sh [WORKER]
source "$(dirname "$0")/common.sh"
"${GCLOUD_TPU[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker="${1:-0}" --command "tail -n 100 -f $LOG"
