#!/usr/bin/env bash
# Starts one run on every worker (in the background; see logs.sh):
#   TPU_NAME=... ZONE=... launch/tpu/run.sh CONFIG WORKDIR [--config.x=y ...]
# WORKDIR must be the same directory on every worker (a /gcs path, see install.sh).
source "$(dirname "$0")/common.sh"
if [[ $# -lt 2 ]]; then echo "usage: $0 CONFIG WORKDIR [flags...]" >&2; exit 2; fi
CONFIG="$1"; WORKDIR="$2"; shift 2
ARGS="$(printf ' %q' "$@")"
on_all_workers "cd ~/rljax && nohup python3 -m launch.train --config $CONFIG --workdir $WORKDIR --distributed$ARGS > $LOG 2>&1 &"
