#!/usr/bin/env bash
# Runs several variants one after another on the same slice, each to completion:
#   TPU_NAME=... ZONE=... launch/tpu/sweep.sh CONFIG WORKDIR_PREFIX "--config.seed=0" "--config.seed=1"
# Variant i writes WORKDIR_PREFIX/i; a variant's flags are one quoted argument.
source "$(dirname "$0")/common.sh"
if [[ $# -lt 3 ]]; then echo "usage: $0 CONFIG WORKDIR_PREFIX VARIANT..." >&2; exit 2; fi
CONFIG="$1"; PREFIX="$2"; shift 2
i=0
for variant in "$@"; do
  echo "sweep: variant $i: $variant -> $PREFIX/$i"
  on_all_workers "cd ~/rljax && python3 -m launch.train --config $CONFIG --workdir $PREFIX/$i --distributed $variant >> $LOG 2>&1"
  i=$((i + 1))
done
