"""Rate–distortion on the MNIST test set: bytes per image against mean PSNR and SSIM for
the rate–distortion-trained codec (aecore.rdcodec, weights/codec/: every level, range-coded
with its learned entropy model), the shipped autoencoders and PCA (codes quantised to
4/6/8 bits and entropy-coded), all in the `python -m aecore compress` file format with every
byte of the file counted, per-image PNG, JPEG and WebP (Pillow), and gzip of the raw pixels.
A full run also times `python -m aecore decompress` of the codec's test-set file as a whole
process, side by side with `python -c "import torch"`.

    python -m bench.rate_distortion           # full test set; writes docs/rate_distortion.json
                                              # and docs/COMPRESSION.md
    python -m bench.rate_distortion --quick   # 500 images, a few settings; prints only
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import aecore
from aecore import baselines
from aecore.evaluation import mean_scores
from aecore.paths import docs_dir
from aecore.atomic import atomic_write_bytes
from aecore import rdcodec
from aecore.compress import (compress_rd_to_size, decode_codes, decompress_rd, encode_images, level_costs, pack_codes,
                             pack_rd, unpack)
from aecore.shipped import shipped_models

from .common import Table, environment

DOCS = docs_dir()
FULL = dict(bits=(4, 6, 8), pca_extra=(8, 64), jpeg=(5, 10, 25, 50, 75, 90),
            webp=(0, 1, 2, 3, 5, 10, 15, 20, 25, 50, 75, 90))
QUICK = dict(bits=(4, 8), pca_extra=(), jpeg=(10, 50), webp=(0, 10, 50))
TARGET_BYTES = 32
ISSUE_SIZES = (16, 100, 160)     # issue 13: PSNR at <= 16 B, best at <= 100 B, above WebP up to 160 B
AE_FAMILIES = ("rd codec", "autoencoder")
NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}


def quality(decoded: torch.Tensor, images: torch.Tensor) -> dict:
    return mean_scores(decoded, images, ("psnr", "ssim"))


def code_rows(model, label: str, family: str, images: torch.Tensor, bits: tuple) -> list[dict]:
    """One row per bit depth: the whole compressed file's size per image, and the quality
    of the images decoded from that file."""
    codes, rows = encode_images(model, images), []
    for b in bits:
        data = pack_codes(codes, model, b)
        packed = unpack(data)
        rows.append({"method": label, "family": family, "setting": f"{b} bits", "code_size": model.code_size,
                     "bits": b, "codec": packed.codec, "bytes_per_image": len(data) / len(images),
                     **quality(decode_codes(model, packed.codes()), images)})
    return rows


def rd_rows(model, name: str, images: torch.Tensor) -> list[dict]:
    """A rate–distortion codec's rows: one per level (every digit at that level), then one
    per target size (`python -m aecore compress --target-bytes`: each digit at its own
    level, the most mean PSNR that fits); the real file's size per image, and the quality
    of the images decoded from it."""
    y, rows = rdcodec.latents(model, images), []
    for level in range(model.levels):
        data = pack_rd(model, y, level)
        rows.append({"method": name, "family": "rd codec", "setting": f"level {level} (λ {model.lambdas[level]:g})",
                     "level": level, "lambda": model.lambdas[level], "code_size": model.code_size,
                     "bytes_per_image": len(data) / len(images), **quality(decompress_rd(data, model), images)})
    costs = level_costs(model, y, images)
    for target in rdcodec.TARGET_SIZES:
        data, levels = compress_rd_to_size(model, images, target, costs)
        if len(data) > target * len(images):
            continue                                   # below the smallest level: nothing to add
        rows.append({"method": name, "family": "rd codec", "setting": f"≤ {target:g} B, a level per digit",
                     "level": None, "target_bytes": target, "code_size": model.code_size,
                     "levels_used": [int(n) for n in np.bincount(levels, minlength=model.levels)],
                     "bytes_per_image": len(data) / len(images), **quality(decompress_rd(data, model), images)})
    return rows


def decode_speed(model, name: str, images: torch.Tensor, level: int, repeats: int = 3) -> dict:
    """Seconds for a whole `python -m aecore decompress` process decoding `images` from a codec
    file, against `python -c "import torch"`, run alternately (median of `repeats` each)."""
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "test.aecz"
        data = pack_rd(model, rdcodec.latents(model, images), level)
        file.write_bytes(data)
        runs = {"import torch": [sys.executable, "-c", "import torch"],
                "decompress": [sys.executable, "-m", "aecore", "decompress", str(file), "--model", name,
                               "--out", str(Path(tmp) / "out.npy"), "--force"]}
        times = {k: [] for k in runs}
        for _ in range(repeats):
            for key, argv in runs.items():
                started = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True, cwd=Path(aecore.__file__).parent.parent)
                times[key].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"images": len(images), "level": level, "file_bytes": len(data),
            "import_torch_s": round(med["import torch"], 3), "decompress_s": round(med["decompress"], 3),
            "ratio": round(med["decompress"] / med["import torch"], 3), "repeats": repeats,
            "all_s": {k: [round(t, 3) for t in v] for k, v in times.items()}}


def codec_rows(images: torch.Tensor, settings: dict) -> list[dict]:
    rows = []
    for codec, qualities in (("png", (None,)), ("jpeg", settings["jpeg"]), ("webp", settings["webp"])):
        for q in qualities:
            size, decoded = baselines.codec_roundtrip(images, codec, q)
            rows.append({"method": NAMES[codec], "family": "image codec" if q is not None else "lossless",
                         "setting": f"quality {q}" if q is not None else "lossless", "quality": q,
                         "bytes_per_image": size, **quality(decoded, images)})
            if q is None:
                assert torch.equal(decoded, images), "PNG must be lossless"
                rows[-1].update(psnr=None, ssim=1.0)
    rows.append({"method": "gzip", "family": "lossless", "setting": "raw bytes, level 9", "psnr": None,
                 "ssim": 1.0, "bytes_per_image": baselines.gzip_bytes_per_image(images)})
    return rows


def measure(images: torch.Tensor, settings: dict, log=print, reuse: dict | None = None
            ) -> tuple[list[dict], list[dict]]:
    """(rows, models used): the rate–distortion codec, autoencoders, PCA, image codecs, lossless
    references. `reuse`: an earlier full run's results, whose rows other than the codec's are kept."""
    rows, used = [], []
    for name, entry, model, error in rdcodec.shipped_codecs():
        if model is None:
            log(f"  {name}: unavailable ({error})")
            continue
        log(f"  {name} (rate–distortion codec, {model.levels} levels) ...")
        rows += rd_rows(model, name, images)
        used.append({"name": name, "model": model.name, "config": model.config, "sha256": entry.get("sha256")})
    if reuse:
        log("  the other methods: kept from the earlier run")
        return (rows + [r for r in reuse["rows"] if r["family"] != "rd codec"],
                used + [m for m in reuse["models"] if m.get("model") != rdcodec.NAME])
    shipped = [s for s in shipped_models() if s.model is not None and not s.is_denoiser]
    for s in shipped:
        log(f"  {s.name} ...")
        rows += code_rows(s.model, s.name, "autoencoder", images, settings["bits"])
        used.append({"name": s.name, "model": s.model.name, "config": s.model.config,
                     "sha256": s.entry.get("sha256")})
    for k in sorted({s.model.code_size for s in shipped} | set(settings["pca_extra"])):
        log(f"  PCA {k} ...")
        rows += code_rows(baselines.pca_model(k), f"PCA-{k}", "pca", images, settings["bits"])
    log("  PNG, JPEG, WebP, gzip ...")
    return rows + codec_rows(images, settings), used


def frontier(rows: list[dict], key: str = "psnr") -> list[dict]:
    """The rows no other row beats (fewer bytes and at least as good `key`), by bytes."""
    out = []
    for r in sorted(rows, key=lambda r: (r["bytes_per_image"], -r[key])):
        if not out or r[key] > out[-1][key]:
            out.append(r)
    return out


def best_at(rows: list[dict], size: float, key: str = "psnr") -> dict | None:
    fits = [r for r in rows if r["bytes_per_image"] <= size]
    return max(fits, key=lambda r: r[key]) if fits else None


def crossover(ae: list[dict], webp: list[dict], key: str) -> dict:
    """The smallest size from which the best WebP file within that size is at least as good
    (by `key`) as the best autoencoder file within it, and where (if) an autoencoder leads again."""
    point = lambda r: r and {k: r[k] for k in ("method", "setting", "bytes_per_image", key)}
    sizes = sorted({r["bytes_per_image"] for r in ae + webp})
    ae_wins = lambda b: best_at(webp, b, key) is None or best_at(ae, b, key)[key] > best_at(webp, b, key)[key]
    lose = next((b for b in sizes if best_at(ae, b, key) and not ae_wins(b)), None)
    regain = lose and next((b for b in sizes if b > lose and ae_wins(b)), None)
    return {"bytes": lose, "regain_bytes": regain, "webp": point(lose and best_at(webp, lose, key)),
            "autoencoder": point(lose and best_at(ae, lose, key))}


def summarize(rows: list[dict]) -> dict:
    """Where the autoencoders stop beating WebP (by PSNR, and by SSIM), and the target check."""
    ae = [r for r in rows if r["family"] in AE_FAMILIES]
    webp = [r for r in rows if r["method"] == "WebP"]
    point = lambda r: r and {k: r[k] for k in ("method", "setting", "bytes_per_image", "psnr", "ssim")}
    out = {"target_bytes": TARGET_BYTES, "target": point(best_at(ae, TARGET_BYTES)),
           "best_within": {str(b): point(best_at(ae, b)) for b in ISSUE_SIZES}}
    if not ae or not webp:
        return out | {"text": "No autoencoder or no WebP results to compare."}
    out.update(webp_min=point(frontier(webp)[0]), ae_best=point(frontier(ae)[-1]),
               psnr=crossover(frontier(ae), frontier(webp), "psnr"),
               ssim=crossover(frontier(ae, "ssim"), frontier(webp, "ssim"), "ssim"))
    return out | {"text": summary_text(out)}


def summary_text(s: dict) -> str:
    w, t, top, by_psnr, by_ssim = s["webp_min"], s["target"], s["ae_best"], s["psnr"], s["ssim"]
    text = [f"WebP cannot make a file smaller than {w['bytes_per_image']:.0f} bytes per image here "
            f"({w['setting']}: {w['psnr']:.2f} dB)."]
    for size, b in (s.get("best_within") or {}).items():
        if b:
            text.append(f"Best within {size} bytes per image: {b['method']} at {b['setting']}, "
                        f"{b['bytes_per_image']:.1f} bytes, {b['psnr']:.2f} dB.")
    if t:
        text.append(f"At {s['target_bytes']} bytes per image or less the best autoencoder is {t['method']} at "
                    f"{t['setting']}: {t['bytes_per_image']:.1f} bytes, {t['psnr']:.2f} dB.")
    if by_psnr["bytes"] is None:
        text.append("By PSNR the autoencoders beat WebP at every size measured.")
    else:
        a, b = by_psnr["autoencoder"], by_psnr["webp"]
        where = ("only below WebP's smallest file, where WebP has no setting at all"
                 if by_psnr["bytes"] == w["bytes_per_image"] else f"below {by_psnr['bytes']:.0f} bytes per image")
        text.append(f"The autoencoders give a higher PSNR than WebP of the same size {where}: at "
                    f"{b['bytes_per_image']:.0f} bytes WebP ({b['setting']}) reaches {b['psnr']:.2f} dB, the best "
                    f"autoencoder that fits ({a['method']}, {a['setting']}) {a['psnr']:.2f} dB.")
        if by_psnr["regain_bytes"]:
            text.append(f"Above {by_psnr['regain_bytes']:.0f} bytes an autoencoder is ahead again.")
    if by_ssim["bytes"] is None:
        text.append("By SSIM the autoencoders beat WebP at every size measured.")
    else:
        b = by_ssim["webp"]
        text.append(f"By SSIM they stay ahead below {by_ssim['bytes']:.0f} bytes per image (WebP {b['setting']}: "
                    f"{b['ssim']:.3f}, the best autoencoder {by_ssim['autoencoder']['ssim']:.3f}).")
    text.append(f"The best autoencoder point overall is {top['method']} at {top['setting']}: "
                f"{top['psnr']:.2f} dB, SSIM {top['ssim']:.3f} at {top['bytes_per_image']:.1f} bytes per image.")
    return " ".join(text)


def table(rows: list[dict], env: dict) -> Table:
    t = Table("Rate–distortion on the MNIST test set",
              ["method", "setting", "bytes / image", "PSNR dB", "SSIM"],
              formats={"bytes / image": ".1f", "PSNR dB": ".2f", "SSIM": ".3f"}, env=env)
    order = {"rd codec": 0, "autoencoder": 1, "pca": 2, "image codec": 3, "lossless": 4}
    key = lambda r: (order[r["family"]], r.get("code_size", 0), r["method"], r["bytes_per_image"])
    for r in sorted(rows, key=key):
        t.add(r["method"], r["setting"], r["bytes_per_image"], r["psnr"] if r["psnr"] is not None else "lossless",
              r["ssim"])
    return t


def speed_lines(speed: dict | None) -> list[str]:
    if not speed:
        return []
    verdict = "within" if speed["ratio"] <= 1.5 else "over"
    return ["## Decoding speed", "",
            f"`python -m aecore decompress` of the codec's file of {speed['images']:,} test digits (level "
            f"{speed['level']}, {speed['file_bytes']:,} bytes) to an .npy, as a whole process: "
            f"{speed['decompress_s']:.2f} s, against {speed['import_torch_s']:.2f} s for `python -c \"import "
            f"torch\"`, run alternately on the same machine (median of {speed['repeats']} each): "
            f"{speed['ratio']:.2f}× ({verdict} issue 13's 1.5×). All runs (s): "
            f"{json.dumps(speed['all_s'])}.", ""]


def markdown(results: dict, t: Table) -> str:
    return "\n".join([
        "# Compression: autoencoders against PCA, PNG, JPEG and WebP", "",
        f"Generated by `python -m bench.rate_distortion` on {results['images']:,} MNIST test digits "
        f"({results['seconds']:.0f} s" + (f"; the rows other than the codec's from a full run of "
                                           f"{results['reused']['seconds']:.0f} s on {results['reused']['date']}, "
                                           f"`--reuse`" if results.get("reused") else "") + "). Bytes per image count the whole file, header included, divided by "
        "the number of images; the autoencoder's decoder and the PCA basis are not counted (the receiver "
        "has them, as it has a codec's program). Autoencoder and PCA codes are quantised per dimension "
        "to 4, 6 or 8 bits between the batch's minimum and maximum and entropy-coded with lzma or zlib "
        "(whichever is smaller), in the format of `python -m aecore compress`. The rate–distortion codec "
        "(`rd_codec`, weights/codec/) was trained for distortion + λ · rate with a learned entropy model "
        "(CompressAI's EntropyBottleneck, one density per latent); each level's symbols are range-coded "
        "(constriction) with integer tables its checkpoint holds: per level, several tables fitted to the "
        "training digits' symbols, each digit coded with the one that costs it least (its choice coded "
        "first). Its rows by level code every digit at that level; its rows by size give each digit its "
        "own level, the most mean PSNR that fits the size (`--target-bytes`). PNG, JPEG and WebP store "
        "each 28×28 image as a file of its own (Pillow); gzip compresses all raw pixels at once.", "",
        "## Where the autoencoder stops beating WebP", "", results["summary"]["text"], "",
        t.markdown(), "The same table, as a chart, is on the app's **Compression** page "
        "(from `docs/rate_distortion.json`).", "", *speed_lines(results.get("decode_speed")),
        "## Compress and decompress yourself", "", "```sh",
        "python -m aecore compress --model rd_codec --target-bytes 16 --out test.aecz   # the test split",
        "python -m aecore compress --model conv_upsample-32 --bits 6 --out ae.aecz",
        "python -m aecore decompress test.aecz --out test.npy          # or --out folder/ for PNGs",
        "python -m aecore compress --images my_digits/ --checkpoint my.pt --out mine.aecz", "```", "",
        "The file: the marker `AECZ`, format version, codec, bits, image count, code size, the model's "
        "name and config, a 16-byte fingerprint of its weights (decoding with any other model is refused), "
        "each code dimension's minimum and step (float32), the lzma/zlib payload (the symbols, one "
        "dimension after another) and a CRC-32 of everything before it (corrupt or truncated files are "
        "refused). Version 3 (the codec's files): the marker, version, how many levels the file uses, image "
        "count, digits per block, the codec's name and config, the fingerprint of its weights and tables, "
        "each level used and its digits' count, each block's byte count, the blocks' range-coded streams "
        "(each digit's level, each digit's choice among its level's entropy tables, then the symbols), and "
        "a CRC-32; version 2 files (one level, one table) are still read. A reader refuses, before any "
        "work, a file whose header claims more than its limits (70,000 images, blocks of 10,000, 16 "
        "levels, 256 MiB files). See `aecore/compress.py`.", ""])


def collect(quick: bool, reuse: str | None = None) -> tuple[dict, Table]:
    """Measure on the test set (quick: 500 images, a few settings): (results, table).
    `reuse`: the JSON of an earlier full run; only the codec's rows are measured again."""
    images = aecore.load_mnist("test")[0][: 500 if quick else None]
    env, started = environment(), time.time()
    earlier = json.loads(Path(reuse).read_text()) if reuse else None
    if earlier and (earlier.get("images") != len(images) or earlier.get("quick")):
        raise SystemExit(f"{reuse}: not a full run on {len(images)} images; cannot reuse its rows")
    print(f"rate-distortion on {len(images)} test images", file=sys.stderr)
    rows, used = measure(images, QUICK if quick else FULL, log=lambda m: print(m, file=sys.stderr), reuse=earlier)
    results = {"images": len(images), "quick": quick, "environment": env, "models": used,
               "seconds": round(time.time() - started, 1), "rows": rows, "summary": summarize(rows)}
    if earlier:
        results["reused"] = {"file": str(reuse), "seconds": earlier["seconds"], "date": earlier["environment"].get("date"),
                             "note": "rows other than the codec's come from this earlier full run"}
    codecs = [(name, model) for name, _, model, _ in rdcodec.shipped_codecs() if model is not None]
    if codecs and not quick:
        name, model = codecs[0]
        print("  decode speed (whole processes, alternating) ...", file=sys.stderr)
        results["decode_speed"] = decode_speed(model, name, images, model.levels - 1)
    t = table(rows, env)
    target = results["summary"].get("target")
    t.headline = (f"Compression: {target['method']} at {target['setting']} stores a test digit in "
                  f"{target['bytes_per_image']:.1f} bytes at {target['psnr']:.2f} dB PSNR; "
                  + (f"WebP's smallest file is {results['summary']['webp_min']['bytes_per_image']:.0f} bytes."
                     if results["summary"].get("webp_min") else "no WebP result.")
                  if target else "Compression: no autoencoder fits in "
                  f"{TARGET_BYTES} bytes per image.")
    return results, t


def write(results: dict, t: Table, json_path: Path | None, md_path: Path | None) -> None:
    if json_path:
        atomic_write_bytes(json_path, (json.dumps(results, indent=1) + "\n").encode())
    if md_path:
        atomic_write_bytes(md_path, markdown(results, t).encode())


def run(quick: bool = False) -> list[Table]:
    """Section 6 of `python -m bench`. A full run also refreshes docs/rate_distortion.json
    (the Compression page's data) and docs/COMPRESSION.md, as `python -m bench.rate_distortion`
    does; the quick one writes nothing."""
    results, t = collect(quick)
    if not quick:
        write(results, t, DOCS / "rate_distortion.json", DOCS / "COMPRESSION.md")
    t.notes += [results["summary"]["text"],
                "The file format and the commands: [COMPRESSION.md](COMPRESSION.md), written by the same run."]
    return [t]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rate_distortion", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="500 images, a few settings, print only")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", default=None, help=f"results file (default {DOCS / 'rate_distortion.json'}; "
                                                "--quick writes only when given)")
    p.add_argument("--md", default=None, help=f"report (default {DOCS / 'COMPRESSION.md'})")
    p.add_argument("--reuse", metavar="JSON", help="keep the rows other than the codec's from this earlier full "
                                                   "run's results; measure only the codec (and its decode speed)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results, t = collect(args.quick, args.reuse)
    print(t.markdown())
    write(results, t, args.json or (None if args.quick else DOCS / "rate_distortion.json"),
          args.md or (None if args.quick else DOCS / "COMPRESSION.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
