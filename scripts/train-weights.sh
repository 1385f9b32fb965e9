#!/usr/bin/env bash
# Reproduces every checkpoint in weights/: each command records itself, its metrics on
# the full MNIST test set and the file's sha256 in weights/manifest.json.
# Two chains of one-thread jobs (2 cores); about 30 minutes here. `--threads` does not
# change what is trained, only how fast. A CUDA GPU is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
train() { "$PY" -m aecore --threads 1 train "$@" --manifest weights/manifest.json --force --quiet; }
chain_a() {
  train --model simple --code-size 32 --epochs 30 --out weights/simple-32.pt
  train --model deep --code-size 32 --epochs 20 --out weights/deep-32.pt
  train --model conv_upsample --code-size 32 --epochs 20 --out weights/conv_upsample-32.pt
}
chain_b() {
  train --model conv_upsample --code-size 64 --epochs 12 --noise gaussian --noise-level 0.5 --out weights/denoiser-gaussian-64.pt
  train --model vae2d --code-size 2 --epochs 8 --out weights/vae2d-2.pt
  train --model vae --code-size 16 --epochs 8 --out weights/vae-16.pt
}
# a denoiser for each noise kind the Denoise page offers (the Gaussian one is in chain_b)
chain_denoisers() {
  train --model conv_upsample --code-size 64 --epochs 12 --noise salt_pepper --noise-level 0.3 --out weights/denoiser-salt_pepper-64.pt
  train --model conv_upsample --code-size 64 --epochs 12 --noise erasing --noise-level 0.25 --out weights/denoiser-erasing-64.pt
}
# the checkerboard page's study decoders: one architecture, four ways to double the
# resolution; small and briefly trained (about 2 minutes each on one thread), in their
# own folder and manifest so they do not crowd the model lists
study() { "$PY" -m aecore --threads 1 train "$@" --manifest weights/checkerboard/manifest.json --force --quiet; }
chain_checkerboard() {
  for up in transpose3 transpose4 transpose2 resize; do
    study --model conv_upsample --code-size 32 --option width=16 --option upsample=$up --epochs 5 \
      --out weights/checkerboard/$up-32.pt
  done
}
[ "${1:-all}" = "all" ] || { "chain_$1"; exit; }
train --model conv --code-size 196 --epochs 15 --out weights/conv-196.pt
chain_a & chain_b & wait
chain_denoisers
chain_checkerboard
