"""Train the rate–distortion codec (aecore.rdcodec) with CompressAI's EntropyBottleneck.

    python -m aecore.codec_train --steps 3000 --out my_codec.pt --threads 1

(the shipped codec's own command is the "command" of weights/codec/manifest.json)

Loss per level k (a share of every batch goes to each level), pixels in [0,1]:
    SSE (summed over the digit) + bits / λ_k
bits from the bottleneck's likelihoods of the noisy latent (additive uniform noise, the
usual proxy); the synthesis sees the rounded latent (straight-through). The
bottlenecks' quantiles train with their own auxiliary loss (CompressAI's convention).
Only training imports compressai; the checkpoint keeps the integer CDF tables that
`update()` computes, which is all that coding needs (aecore.rdcodec).
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


def main(argv=None) -> int:
    from .precision import torch_threads
    with torch_threads(None):   # whatever --threads sets, an in-process caller keeps its own count
        return _main(argv)


def _main(argv) -> int:
    p = argparse.ArgumentParser(prog="python -m aecore.codec_train", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--fine", type=int, default=16, help="the synthesis' channels at 14x14")
    p.add_argument("--lambdas", default=None, help="comma-separated λ ladder (bits per unit SSE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-steps", type=float, default=0.5,
                   help="share of the steps whose synthesis sees noisy latents (then rounded ones)")
    p.add_argument("--init-scale", type=float, default=4.0, help="the bottlenecks' initial density width")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", help="record the checkpoint and this command here")
    p.add_argument("--log-every", type=int, default=200)
    p.add_argument("--finalize", metavar="RAW", help="only rebuild the checkpoint from a saved training state")
    p.add_argument("--mixtures", default="0",
                   help="entropy tables per level fitted to the training digits: one count, or one per level, "
                        "comma-separated (0: the level keeps CompressAI's one table)")
    p.add_argument("--refit", action="store_true",
                   help="only fit --mixtures tables to the codec checkpoint --out, in place")
    args = p.parse_args(argv)
    command = "python -m aecore.codec_train " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        mixtures = [int(v) for v in args.mixtures.split(",")]
    except ValueError:
        p.error(f"--mixtures takes whole numbers, got {args.mixtures!r}")
    if not all(0 <= m <= 64 for m in mixtures):
        p.error(f"--mixtures must be 0..64 tables, got {args.mixtures}")
    args.mixtures = mixtures
    if args.refit:
        torch.set_num_threads(args.threads)
        return refit(Path(args.out), args.manifest, args.mixtures, command)
    if args.finalize:
        torch.set_num_threads(args.threads)
        state = torch.load(args.finalize, map_location="cpu", weights_only=True)
        return finalize(Path(args.finalize), Path(args.out), args.manifest, state["command"], mixtures=args.mixtures)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from compressai.entropy_models import EntropyBottleneck

    from .data import load_mnist
    from .precision import autocast, resolve_precision
    from . import rdcodec

    lambdas = [float(v) for v in args.lambdas.split(",")] if args.lambdas else list(rdcodec.DEFAULT_LAMBDAS)
    model = rdcodec.RDCodec(channels=args.channels, width=args.width, lambdas=lambdas, fine=args.fine)
    K, D = model.levels, model.code_size
    ebs = torch.nn.ModuleList([EntropyBottleneck(D, init_scale=args.init_scale) for _ in range(K)])
    precision, note = resolve_precision(args.precision, torch.device("cpu"))
    if note:
        print(note, flush=True)
    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    main_params = list(model.parameters()) + [q for n, q in ebs.named_parameters() if not n.endswith("quantiles")]
    aux_params = [q for n, q in ebs.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=5e-3)
    g = torch.Generator().manual_seed(args.seed)
    level_of = torch.arange(args.batch) % K
    lam = torch.tensor(lambdas)
    start, perm, at = time.time(), torch.randperm(len(train), generator=g), 0
    warm = min(200, args.steps // 10)
    for step in range(args.steps):
        lr = args.lr * (min(1.0, (step + 1) / warm) * (0.5 * (1 + math.cos(math.pi * step / args.steps)) * 0.98 + 0.02))
        for group in opt.param_groups:
            group["lr"] = lr
        if at + args.batch > len(train):
            perm, at = torch.randperm(len(train), generator=g), 0
        x = train[perm[at:at + args.batch]]
        at += args.batch
        with autocast(precision, torch.device("cpu")):
            y = model.latent(x)
        y = y.float()
        gain, igain = model.log_gain.exp()[level_of], model.log_igain.exp()[level_of]
        yk = y * gain
        bits = torch.zeros(args.batch)
        y_hat = torch.empty_like(yk)
        for k in range(K):
            rows = level_of == k
            noisy, lik = ebs[k](yk[rows].reshape(-1, D, 1, 1))
            bits[rows] = -torch.log2(lik.reshape(-1, D).clamp_min(1e-9)).sum(1)
            if step < args.noise_steps * args.steps:   # noise first: rounding would hide small latents
                y_hat[rows] = noisy.reshape(-1, D)
            else:                                      # then what the codec does: round (straight-through)
                med = ebs[k]._get_medians().reshape(1, D)
                y_hat[rows] = ste_round(yk[rows] - med) + med
        with autocast(precision, torch.device("cpu")):
            x_hat = model.synthesize(y_hat * igain)
        sse = ((x_hat.float() - x) ** 2).flatten(1).sum(1)
        loss = (sse + bits / lam[level_of]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        aux = sum(eb.loss() for eb in ebs)
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            per = [(float((sse[level_of == k]).mean()), float(bits[level_of == k].mean() / 8)) for k in range(K)]
            psnr = " ".join(f"{10 * math.log10(784 / s):.1f}dB/{b:.1f}B" for s, b in per)
            print(f"step {step} {time.time() - start:.0f}s loss {loss.item():.3f} aux {aux.item():.1f} | {psnr}",
                  flush=True)
            if not math.isfinite(loss.item()):
                print("diverged", flush=True)
                return 1
    raw = Path(args.out).with_suffix(".train.pt")
    torch.save({"model": model.state_dict(), "config": model.config, "command": command,
                "ebs": ebs.state_dict(), "seconds": round(time.time() - start)}, raw)
    print(f"saved the training state to {raw}", flush=True)
    return finalize(raw, Path(args.out), args.manifest, command, start, mixtures=args.mixtures)


@torch.no_grad()
def table_of(eb) -> dict:
    """The integer tables of a CompressAI EntropyBottleneck (after its `update()`), as
    aecore.rdcodec keeps them: each latent's quantised CDF cut to its length, concatenated."""
    eb.update(force=True)
    lengths = eb._cdf_length.to(torch.int32)
    cdf = torch.cat([eb._quantized_cdf[c, :int(lengths[c])] for c in range(len(lengths))]).to(torch.int32)
    return {"median": eb._get_medians().detach().reshape(-1).float().clone(),
            "offset": eb._offset.to(torch.int32).clone(), "cdf_length": lengths.clone(), "cdf": cdf}


def finalize(raw: Path, out: Path, manifest: str | None, command: str, start: float | None = None,
             mixtures: list[int] | None = None) -> int:
    """Fit the bottlenecks' quantiles (their auxiliary loss only: no data), build the integer
    CDF tables, and write the shipped checkpoint (+ its manifest entry)."""
    from compressai.entropy_models import EntropyBottleneck

    from . import rdcodec
    from .data import load_mnist
    start = start or time.time()
    state = torch.load(raw, map_location="cpu", weights_only=True)
    model = rdcodec.RDCodec(**state["config"])
    model.load_state_dict(state["model"])
    K, D = model.levels, model.code_size
    ebs = torch.nn.ModuleList([EntropyBottleneck(D) for _ in range(K)])
    ebs.load_state_dict(state["ebs"], strict=False)
    aux_params = [q for n, q in ebs.named_parameters() if n.endswith("quantiles")]
    aux_opt = torch.optim.Adam(aux_params, lr=1e-2)
    for step in range(3000):
        if step == 2000:
            for group in aux_opt.param_groups:
                group["lr"] = 1e-3
        aux = sum(eb.loss() for eb in ebs)
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
    print(f"auxiliary loss after refinement {aux.item():.3f}", flush=True)
    # The tables must cover every symbol the codec meets: the quantiles the auxiliary loss
    # fits can stop short of a level's real range (then a latent would be clipped). Widen
    # them to the range of the gained latents over the training digits.
    train, _ = load_mnist("train")
    y = rdcodec.latents(model, train)
    with torch.no_grad():
        for k, eb in enumerate(ebs):
            gain, _ = model.gains(k)
            s = y * gain
            q = eb.quantiles.data
            q[:, 0, 0] = torch.minimum(q[:, 0, 0], s.min(0).values.floor() - 1)
            q[:, 0, 2] = torch.maximum(q[:, 0, 2], s.max(0).values.ceil() + 1)
    model.set_tables([table_of(eb) for eb in ebs])
    model.eval()
    if any(mixtures or ()):
        model.set_mixtures(fit_mixtures(model, train, mixtures))
    return save(model, out, manifest, command, state.get("seconds"), start)


def save(model, out: Path, manifest: str | None, command: str, seconds, start: float) -> int:
    """Measure every level on the test digits, write the checkpoint (+ its manifest entry)."""
    from . import rdcodec
    from .checkpoint import save_checkpoint
    from .data import load_mnist
    test, _ = load_mnist("test")
    metrics = rdcodec.evaluate_levels(model, test)
    save_checkpoint(model, out, metrics={"levels": metrics}, training={"command": command, "seconds": seconds})
    print(json.dumps(metrics, indent=1), flush=True)
    if manifest:
        from .manifest import record_in_manifest
        record_in_manifest(Path(manifest), out, command, {"levels": metrics}, model)
    print(f"wrote {out} in {time.time() - start:.0f}s", flush=True)
    return 0


def refit(out: Path, manifest: str | None, mixtures: list[int], command: str) -> int:
    """Fit `mixtures` tables per level (fit_mixtures) to a trained codec's checkpoint, in place; its
    recorded command becomes its training's, then this one."""
    from . import rdcodec
    from .data import load_mnist
    start = time.time()
    model = rdcodec.load_codec(out)
    trained = model.training_info.get("command") or ""
    trained = trained.split(" && ")[0]          # a refit replaces an earlier refit
    train, _ = load_mnist("train")
    model.set_mixtures(fit_mixtures(model, train, mixtures))
    return save(model, out, manifest, f"{trained} && {command}" if trained else command,
                model.training_info.get("seconds"), start)


@torch.no_grad()
def fit_mixtures(model, images: torch.Tensor, mixtures, iterations: int = 10, seed: int = 0,
                 chunk: int = 10_000, log=print) -> list[dict | None]:
    """Per level, `mixtures` tables (one count for every level, or a list: one per level;
    0 or 1 keeps the level's CompressAI table) of symbol frequencies over the level's
    supports, and how often each is chosen: hard EM on the symbols of `images` (assign each
    digit to the table that codes it in the fewest bits, recount each table from its
    digits, again). A symbol's probability is (2 count + 1) / its latent's total (never 0:
    any symbol stays codable), stored as an int16 share of 32767, at least 1. Tables no
    digit chose are dropped."""
    from . import rdcodec
    counts_per_level = [mixtures] * model.levels if isinstance(mixtures, int) else list(mixtures)
    if len(counts_per_level) == 1:
        counts_per_level *= model.levels
    if len(counts_per_level) != model.levels:
        raise ValueError(f"{len(counts_per_level)} mixture counts for {model.levels} levels")
    y = rdcodec.latents(model, images)
    out = []
    for k, mixtures in enumerate(counts_per_level):
        if mixtures < 2:
            out.append(None)
            continue
        support = rdcodec.supports(model.table(k))
        length = int(support.sum())
        starts = torch.from_numpy(np.concatenate([[0], np.cumsum(support)[:-1]]))
        dim_of = torch.repeat_interleave(torch.arange(len(support)), torch.from_numpy(support))
        flat = torch.from_numpy(rdcodec.to_symbols(model, y, k).astype(np.int64)) + starts
        assign = torch.randint(0, mixtures, (len(flat),), generator=torch.Generator().manual_seed(seed + k))
        for it in range(iterations + 1):
            counts = torch.zeros(mixtures * length, dtype=torch.int64)
            for i in range(0, len(flat), chunk):
                counts += torch.bincount((assign[i:i + chunk, None] * length + flat[i:i + chunk]).reshape(-1),
                                         minlength=mixtures * length)
            freq = (2 * counts + 1).reshape(mixtures, length)
            if it == iterations:
                break
            sums = torch.zeros(mixtures, len(support), dtype=torch.float64).index_add_(1, dim_of, freq.double())
            logp = (freq.double().log2() - sums[:, dim_of].log2()).float()
            share = torch.bincount(assign, minlength=mixtures).double() + 1
            cost_of_choice = -(share / share.sum()).log2().float()
            bits = torch.cat([torch.stack([-logp[j][flat[i:i + chunk]].sum(1) for j in range(mixtures)], 1)
                              for i in range(0, len(flat), chunk)]) + cost_of_choice
            assign = bits.argmin(1)
            log(f"level {k} iteration {it + 1}: {bits.min(1).values.mean().item() / 8:.2f} bytes per digit", flush=True)
        used = torch.bincount(assign, minlength=mixtures)
        keep = used > 0
        freq = freq[keep].double()
        totals = torch.zeros(len(freq), len(support), dtype=torch.float64).index_add_(1, dim_of, freq)
        share = (freq / totals[:, dim_of] * rdcodec.MAX_FREQ).floor().clamp_(1, rdcodec.MAX_FREQ)
        out.append({"freq": share.to(torch.int16), "prior": used[keep].to(torch.int32)})
    return out


if __name__ == "__main__":
    sys.exit(main())
