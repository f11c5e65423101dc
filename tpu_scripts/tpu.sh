#!/usr/bin/env bash
# Run llm2llm-jax on a Cloud TPU VM: create it, set it up on every worker, launch the same command on
# every worker, copy the run directory back, delete it.
#
# Usage: tpu_scripts/tpu.sh {create|setup|run|copy|delete|all} [launch flags...]
#   tpu_scripts/tpu.sh all --config=configs/sst2.py --config.model.path=/data/llama-2-7b-hf
#
# Environment (required: TPU_PROJECT, TPU_ZONE, TPU_ACCELERATOR):
#   TPU_PROJECT       GCP project               TPU_ZONE         e.g. us-central2-b
#   TPU_ACCELERATOR   e.g. v4-32, v5litepod-8   TPU_NAME         default llm2llm
#   TPU_RUNTIME       default tpu-ubuntu2204-base
#   REPO_URL          git URL to clone on the workers (default: this checkout's origin)
#   REPO_REF          branch or commit (default main)
#   RUN_DIR           run directory on worker 0 to copy back (default runs/default)
#   LOCAL_OUT         where `copy` puts it locally (default ./tpu_runs)
#   GEMINI_API_KEY    passed to the workers' environment for teacher.kind=gemini (never written to disk)
#   DRY_RUN=1         print the gcloud commands instead of running them
set -euo pipefail

die() { echo "tpu.sh: $*" >&2; exit 2; }

: "${TPU_NAME:=llm2llm}"
: "${TPU_RUNTIME:=tpu-ubuntu2204-base}"
: "${REPO_REF:=main}"
: "${RUN_DIR:=runs/default}"
: "${LOCAL_OUT:=./tpu_runs}"
if [[ -z "${REPO_URL:-}" ]]; then
  REPO_URL="$(git -C "$(dirname "$0")/.." config --get remote.origin.url 2>/dev/null || true)"
fi

need_env() {
  local missing=()
  for var in TPU_PROJECT TPU_ZONE TPU_ACCELERATOR; do
    [[ -n "${!var:-}" ]] || missing+=("$var")
  done
  ((${#missing[@]} == 0)) || die "set ${missing[*]} (see the header of this script)"
}

# Print a command (shell-quoted) in dry-run mode, run it otherwise.
run() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

ssh_all() {
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --project="$TPU_PROJECT" --zone="$TPU_ZONE" --worker=all \
    --command="$1"
}

create() {
  run gcloud compute tpus tpu-vm create "$TPU_NAME" --project="$TPU_PROJECT" --zone="$TPU_ZONE" \
    --accelerator-type="$TPU_ACCELERATOR" --version="$TPU_RUNTIME"
}

setup() {
  [[ -n "$REPO_URL" ]] || die "set REPO_URL (no git origin found to default to)"
  ssh_all "set -e; if [ ! -d llm2llm-jax ]; then git clone $(printf '%q' "$REPO_URL") llm2llm-jax; fi; \
cd llm2llm-jax && git fetch --all && git checkout $(printf '%q' "$REPO_REF") && \
python3 -m venv .venv && . .venv/bin/activate && pip install -q -U pip && \
pip install -q -c constraints.txt 'jax[tpu]' -e ."
}

launch() {
  local flags=("$@")
  ((${#flags[@]})) || flags=(--config=configs/default.py)
  local quoted key_part=""
  quoted="$(printf '%q ' "${flags[@]}")"
  if [[ -n "${GEMINI_API_KEY:-}" ]]; then
    # Set for the one command only; the key never lands in a file on the workers, nor in dry-run output.
    if [[ "${DRY_RUN:-0}" == "1" ]]; then
      key_part="GEMINI_API_KEY=<redacted> "
    else
      key_part="GEMINI_API_KEY=$(printf '%q' "$GEMINI_API_KEY") "
    fi
  fi
  ssh_all "cd llm2llm-jax && . .venv/bin/activate && ${key_part}python launch/run.py ${quoted}"
}

copy() {
  run mkdir -p "$LOCAL_OUT"
  run gcloud compute tpus tpu-vm scp --recurse "$TPU_NAME:llm2llm-jax/$RUN_DIR" "$LOCAL_OUT/" \
    --project="$TPU_PROJECT" --zone="$TPU_ZONE" --worker=0
}

delete() {
  run gcloud compute tpus tpu-vm delete "$TPU_NAME" --project="$TPU_PROJECT" --zone="$TPU_ZONE" --quiet
}

main() {
  (($# >= 1)) || die "usage: tpu.sh {create|setup|run|copy|delete|all} [launch flags...]"
  local cmd="$1"
  shift
  need_env
  case "$cmd" in
    create) create ;;
    setup) setup ;;
    run) launch "$@" ;;
    copy) copy ;;
    delete) delete ;;
    all) create && setup && launch "$@" && copy && delete ;;
    *) die "unknown command '$cmd'; use create, setup, run, copy, delete or all" ;;
  esac
}

main "$@"
