#!/usr/bin/env bash
# Reproduces every checkpoint in weights/: each command records itself, its metrics on
# the full MNIST test set and the file's sha256 in weights/manifest.json.
# Two chains of one-thread jobs at a time (2 cores); about 2.5 hours here (bfloat16
# autocast on a CPU with AVX-512 bf16; a CUDA GPU is used when present). `--threads` does not
# change what is trained, only how fast. A CUDA GPU is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
train() { "$PY" -m aecore --threads 1 train "$@" --manifest weights/manifest.json --force --quiet; }
chain_a() {
  train --model simple --code-size 32 --epochs 30 --out weights/simple-32.pt
  train --model deep --code-size 32 --epochs 20 --out weights/deep-32.pt
  # the best model with a code of 32 numbers (issue 10: test MSE <= 0.0025): wider, longer
  train --model conv_upsample --code-size 32 --option width=48 --epochs 40 --out weights/conv_upsample-32.pt
}
chain_b() {
  # two 3x3 convolutions per resolution in the encoder: a little more for heavy noise
  train --model conv_upsample --code-size 128 --option width=32 --option encoder_convs=2 --epochs 25 --noise gaussian --noise-level 0.5 --out weights/denoiser-gaussian-128d.pt
  train --model vae2d --code-size 2 --epochs 8 --out weights/vae2d-2.pt
  # issue 10: negative ELBO <= 95 nats per test digit
  train --model vae --code-size 16 --option width=32 --epochs 30 --out weights/vae-16.pt
}
# a denoiser for each noise kind the Denoise page offers (the Gaussian one is in chain_b),
# and a blind one trained on every kind at random levels up to each kind's page maximum
chain_denoisers() {
  train --model conv_upsample --code-size 128 --option width=32 --epochs 30 --noise salt_pepper --noise-level 0.3 --out weights/denoiser-salt_pepper-128.pt
  train --model conv_upsample --code-size 64 --epochs 12 --noise erasing --noise-level 0.25 --out weights/denoiser-erasing-64.pt
  train --model conv_upsample --code-size 96 --option width=48 --epochs 30 --noise blind --out weights/denoiser-blind-96.pt
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
chain_denoisers & chain_checkerboard & wait
