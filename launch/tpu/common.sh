# Shared settings of the TPU scripts; each script sources this file.
#   TPU_NAME     name of the TPU VM / pod slice                     (required)
#   ZONE         e.g. us-central2-b                                  (required)
#   ACCELERATOR  e.g. v4-8, v4-32, v5litepod-16                      (create.sh)
#   RUNTIME      TPU VM image, default tpu-ubuntu2204-base           (create.sh)
#   PROJECT      GCP project (default: gcloud's configured one)
#   BUCKET       optional GCS bucket mounted at /gcs on every worker (install.sh):
#                the workdir must be the same directory on all workers, e.g. /gcs/runs/x
#   LOG          log file on each worker, default ~/rljax.log
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME (the TPU VM or pod slice name)}"
: "${ZONE:?set ZONE (e.g. us-central2-b)}"
RUNTIME="${RUNTIME:-tpu-ubuntu2204-base}"
LOG="${LOG:-~/rljax.log}"
GCLOUD_TPU=(gcloud compute tpus tpu-vm)
WHERE=(--zone "$ZONE")
if [[ -n "${PROJECT:-}" ]]; then WHERE+=(--project "$PROJECT"); fi

# Runs a shell command on every worker of the slice at once (multi-controller JAX needs
# all of them: a run started on worker 0 alone would wait for the others, then fail).
on_all_workers() {
  "${GCLOUD_TPU[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker=all --command "$1"
}
