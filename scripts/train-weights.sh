#!/usr/bin/env bash
# Reproduces every checkpoint in weights/: each command records itself, its metrics on
# the full MNIST test set and the file's sha256 in weights/manifest.json.
# Two chains of one-thread jobs (2 cores); about 40 minutes. `--threads` does not
# change what is trained, only how fast. A CUDA GPU is used when present.
# All but simple-32 were trained before the trainer gained its learning-rate warm-up,
# output-bias init and fused Adam; `--warmup 0 --no-init-bias` reproduces them to the same
# test metrics (checked on simple-32 with --lr 0.002: bit for bit before fused Adam, after it
# every weight within 1e-4 and the same MSE/PSNR/SSIM). The defaults train better models.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
train() { "$PY" -m aecore --threads 1 train "$@" --manifest weights/manifest.json --force --quiet; }
chain_a() {
  train --model simple --code-size 32 --epochs 30 --out weights/simple-32.pt
  train --model deep --code-size 32 --epochs 20 --warmup 0 --no-init-bias --out weights/deep-32.pt
  train --model conv_upsample --code-size 32 --epochs 20 --warmup 0 --no-init-bias --out weights/conv_upsample-32.pt
}
chain_b() {
  train --model conv_upsample --code-size 64 --epochs 12 --noise gaussian --noise-level 0.5 --warmup 0 --no-init-bias --out weights/denoiser-gaussian-64.pt
  train --model vae2d --code-size 2 --epochs 8 --warmup 0 --no-init-bias --out weights/vae2d-2.pt
  train --model vae --code-size 16 --epochs 8 --warmup 0 --no-init-bias --out weights/vae-16.pt
}
[ "${1:-all}" = "all" ] || { "chain_$1"; exit; }
train --model conv --code-size 196 --epochs 15 --warmup 0 --no-init-bias --out weights/conv-196.pt
chain_a & chain_b & wait
