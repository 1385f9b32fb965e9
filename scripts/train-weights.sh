#!/usr/bin/env bash
# Reproduces every checkpoint in weights/: each command records itself, its metrics on
# the full MNIST test set and the file's sha256 in weights/manifest.json.
# About 75 minutes on 2 CPU cores; a CUDA GPU is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
train() { "$PY" -m aecore train "$@" --manifest weights/manifest.json --force --quiet; }
train --model simple --code-size 32 --epochs 30 --out weights/simple-32.pt
train --model conv --code-size 196 --epochs 15 --out weights/conv-196.pt
train --model deep --code-size 32 --epochs 30 --out weights/deep-32.pt
train --model conv_upsample --code-size 32 --epochs 25 --out weights/conv_upsample-32.pt
train --model conv_upsample --code-size 64 --epochs 20 --noise gaussian --noise-level 0.5 --out weights/denoiser-gaussian-64.pt
train --model vae2d --code-size 2 --epochs 10 --out weights/vae2d-2.pt
train --model vae --code-size 16 --epochs 10 --out weights/vae-16.pt
