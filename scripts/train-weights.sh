#!/usr/bin/env bash
# Reproduces every checkpoint in weights/ (and weights/checkerboard/) from sweeps/shipped.toml,
# whose trials are, one for one, the commands recorded in the manifests
# (`.venv/bin/python -m aecore sweep sweeps/shipped.toml --dry-run` lists them;
# tests/test_sweep_spec.py checks they match). Each trial records itself, its metrics on the
# full MNIST test set, the file's sha256 and the spec's name in its manifest.
#
# The sweep runs each trial as a Ray task on one core with one thread (about 2.5 hours on 2 cores
# here, bfloat16 autocast on a CPU with AVX-512 bf16; a CUDA GPU is used when present), writes
# runs/shipped/results.{csv,json} as trials finish, and resumes where it stopped when rerun.
#   scripts/train-weights.sh                  every model, on a local Ray on all cores
#   scripts/train-weights.sh checkerboard     only the trials whose name starts "checkerboard"
#   scripts/train-weights.sh all --serial     one after another, without Ray
#   RAY_ADDRESS=HEAD:6379 scripts/train-weights.sh   on a Ray cluster (README: Sweeps and a Ray cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
which=${1:-all}
[ $# -gt 0 ] && shift
if [ "$which" = "all" ]; then
  exec "$PY" -m aecore sweep sweeps/shipped.toml "$@"
fi
exec "$PY" -m aecore sweep sweeps/shipped.toml --only "$which*" "$@"
