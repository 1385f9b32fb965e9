"""The rate–distortion codec (aecore.rdcodec) and its files (format versions 2 and 3 of
aecore.compress): range coding with integer CDF tables is bit-exact, with mixture tables
and a level per digit too, and every reader refuses a forged file from what it can check
before allocating anything."""
import argparse
import struct
import zlib

import numpy as np
import pytest
import torch

from aecore import compress, rdcodec
from aecore.checkpoint import CheckpointError, checkpoint_bytes, save_checkpoint
from aecore.compress import CompressError


def laplace_tables(model, seed=0):
    """Valid integer tables as CompressAI's update() lays them out (0 .. 2**16, the last
    symbol an overflow bin): a discrete Laplace of random width per latent, some latents
    with a single symbol (they cost nothing)."""
    g, out = np.random.default_rng(seed), []
    for _ in range(model.levels):
        lengths, cdfs = [], []
        for _ in range(model.code_size):
            n = int(g.integers(1, 12))
            p = np.exp(-np.abs(np.arange(n) - n // 2) * g.uniform(0.3, 2))
            q = np.maximum(1, np.floor(p / p.sum() * (2 ** 16 - n - 1))).astype(np.int64)
            q = np.append(q, 1)
            q[np.argmax(q)] += 2 ** 16 - q.sum()
            cdf = np.concatenate([[0], np.cumsum(q)])
            lengths.append(len(cdf))
            cdfs.append(cdf)
        out.append({"median": torch.from_numpy(g.normal(size=model.code_size).astype(np.float32)),
                    "offset": torch.from_numpy(g.integers(-6, 0, model.code_size).astype(np.int32)),
                    "cdf_length": torch.tensor(lengths, dtype=torch.int32),
                    "cdf": torch.from_numpy(np.concatenate(cdfs).astype(np.int32))})
    return out


def small_codec(seed=0):
    torch.manual_seed(seed)
    model = rdcodec.RDCodec(channels=4, width=16, lambdas=(10.0, 100.0))
    model.set_tables(laplace_tables(model, seed))
    return model.eval()


@pytest.fixture(scope="module")
def codec():
    return small_codec()


@pytest.fixture(scope="module")
def images(mnist_test):
    return mnist_test[0][:300]


def run_cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    compress.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_symbols_round_trip_exactly_and_files_are_deterministic(codec, images):
    y = rdcodec.latents(codec, images)
    for level in range(codec.levels):
        symbols = rdcodec.to_symbols(codec, y, level)
        coder = codec.coders()[level]
        assert (symbols >= 0).all() and (symbols < np.maximum(coder.support, 1)).all()
        assert len(np.unique(symbols)) > 1
        assert np.array_equal(coder.decode(coder.encode(symbols), len(symbols)), symbols)
        first, second = compress.pack_rd(codec, y, level, block=128), compress.pack_rd(codec, y, level, block=128)
        assert first == second                                   # compress twice: the same bytes
        packed = compress.unpack_rd(first)
        assert (packed.count, packed.level, len(packed.payloads)) == (300, level, 3)
        a, b = compress.decode_rd(packed, codec), compress.decompress_rd(first, codec)
        assert torch.equal(a, b)                                 # decode twice: the same pixels
        assert torch.equal(a, rdcodec.from_symbols(codec, symbols, level))
        assert a.shape == (300, 1, 28, 28) and 0 <= a.min() and a.max() <= 1


def test_the_range_coder_spends_about_the_tables_entropy(codec):
    """The coded size is the symbols' information under the tables' distribution (+ a flush)."""
    coder = codec.coders()[0]
    g = np.random.default_rng(1)
    table = codec.table(0)
    ends = np.cumsum(table["cdf_length"].numpy())
    symbols, bits = np.zeros((4000, codec.code_size), np.int32), 0.0
    for c in range(codec.code_size):
        cdf = table["cdf"].numpy()[ends[c] - int(table["cdf_length"][c]):ends[c]].astype(np.float64)
        n = int(coder.support[c])
        p = np.diff(cdf)[:n] / np.diff(cdf)[:n].sum()
        symbols[:, c] = g.choice(n, size=4000, p=p)
        bits += -np.log2(p[symbols[:, c]]).sum() if n > 1 else 0
    size = len(coder.encode(symbols)) * 8
    assert bits * 0.99 < size < bits * 1.01 + 64


def test_a_checkpoint_round_trip_keeps_the_tables_and_the_fingerprint(codec, images, tmp_path):
    path = save_checkpoint(codec, tmp_path / "codec.pt")
    reloaded = rdcodec.load_codec(path)
    assert compress.model_fingerprint(reloaded) == compress.model_fingerprint(codec)
    data = compress.compress_rd(codec, images[:50], 1)
    assert torch.equal(compress.decompress_rd(data, reloaded), compress.decompress_rd(data, codec))
    other = small_codec(seed=1)
    with pytest.raises(CompressError, match="was compressed with rd_codec .* not with this rd_codec"):
        compress.decompress_rd(data, other)


def test_forged_tables_in_a_checkpoint_are_refused(codec):
    ckpt = torch.load(__import__("io").BytesIO(checkpoint_bytes(codec)), weights_only=True)
    cases = {"table0_cdf_length": ("must be 3..4096", lambda t: torch.full_like(t, 10 ** 6)),
             "table0_cdf": ("from 0 to 2\\*\\*16", lambda t: t * 2),
             "table1_offset": ("must be int32", lambda t: t.long()),
             "table1_median": ("shapes", lambda t: t[:-1])}
    for key, (reason, forge) in cases.items():
        bad = {**ckpt, "state_dict": {**ckpt["state_dict"], key: forge(ckpt["state_dict"][key])}}
        with pytest.raises(CheckpointError, match=reason):
            rdcodec.from_checkpoint(bad, "forged.pt")
    missing = {**ckpt, "state_dict": {k: v for k, v in ckpt["state_dict"].items() if k != "table1_cdf"}}
    with pytest.raises(CheckpointError, match="forged.pt: the entropy table 'table1_cdf' is missing"):
        rdcodec.from_checkpoint(missing, "forged.pt")


def forge(data: bytes, **fields) -> bytes:
    """`data` with header fields replaced (crc recomputed): version, kind, level, count, block, meta_len."""
    names = ("magic", "version", "kind", "level", "zero", "count", "block", "meta_len")
    values = dict(zip(names, compress._FIXED2.unpack_from(data))) | fields
    return with_crc(compress._FIXED2.pack(*values.values()) + data[compress._FIXED2.size:-4])


def test_forged_headers_are_refused_before_any_work(codec, images):
    data = compress.compress_rd(codec, images[:20], 0)
    meta_len = struct.unpack_from("<H", data, 16)[0]
    blocks_at = compress._FIXED2.size + meta_len + 16 + compress._LEVEL.size    # after the one (level, digits)
    v2 = version2_file(codec, rdcodec.latents(codec, images[:20]), 0)
    cases = {
        forge(data, count=2 ** 32 - 1): "4294967295 images: 1 to 70,000",
        forge(data, count=compress.MAX_IMAGES + 1): "70001 images",
        forge(data, block=0): "blocks of 0",
        forge(data, block=2 ** 31): "blocks of 2147483648",
        forge(data, meta_len=65535): "65535 bytes of metadata",
        forge(data, count=70_000, block=1): "count its digits",             # the level says 20
        forge(v2, count=70_000, block=1): "truncated: .* the header alone needs 280",     # 70,000 block sizes
        forge(data, kind=7): "kind 7",
        forge(data, version=4): "version 4 is not a rate",
        forge(data, level=0): "0 levels: 1 to 16",
        forge(data, level=17): "17 levels: 1 to 16",
        with_crc(data[:blocks_at] + struct.pack("<I", 2 ** 32 - 4) + data[blocks_at + 4:-4]): "truncated",
        with_crc(data[:blocks_at] + struct.pack("<I", 1) + data[blocks_at + 4:-4]): "truncated|unexpected",
        data[:-1]: "truncated", data + b"\0\0": "2 unexpected bytes", data[:10]: "no AECZ marker",
        b"AECZ" + bytes(range(200)): "version 0 is not",
        b"AECZ\x02" + bytes(range(255, 0, -1)): "malformed header",
        data[:-9] + bytes([data[-9] ^ 0x40]) + data[-8:]: "checksum",
    }
    for bad, reason in cases.items():
        with pytest.raises(CompressError, match=reason) as e:
            compress.decompress_rd(bad, codec, "forged.aecz")
        assert str(e.value).startswith("forged.aecz: ") and "\n" not in str(e.value)
    # a payload cut short inside a block: the sizes no longer add up
    n = struct.unpack_from("<I", data, blocks_at)[0]
    short = with_crc(data[:blocks_at] + struct.pack("<I", n - 4) + data[blocks_at + 4:-8])
    with pytest.raises(CompressError, match="forged.aecz: malformed|forged.aecz: truncated|unexpected"):
        compress.unpack_rd(short[:-4] + data[-8:-4] + short[-4:], "forged.aecz")


def version2_file(codec, y, level, block=compress.RD_BLOCK) -> bytes:
    """A file as aecore wrote rate–distortion files before version 3: one level, its
    CompressAI table, blocks of plain range-coded symbols."""
    import json
    coder, symbols = codec.coders()[level], rdcodec.to_symbols(codec, y, level)
    payloads = [coder.encode(symbols[i:i + block]) for i in range(0, len(y), block)]
    meta = json.dumps({"model": codec.name, "config": codec.config}, separators=(",", ":")).encode()
    return with_crc(b"".join([compress._FIXED2.pack(b"AECZ", 2, 1, level, 0, len(y), block, len(meta)), meta,
                              compress.model_fingerprint(codec), struct.pack(f"<{len(payloads)}I", *map(len, payloads)),
                              *payloads]))


def test_every_version_reads_and_the_others_are_named(codec, images, tmp_path):
    ae = compress.Packed  # version 1 is still written by the autoencoders' path
    v3 = compress.compress_rd(codec, images[:5], 0)
    assert compress.file_version(v3) == 3 and compress.file_version(b"nope") is None
    with pytest.raises(CompressError, match="version 3 holds a rate–distortion codec's symbols"):
        compress.unpack(v3, "x.aecz")
    with pytest.raises(CompressError, match="x.aecz: format version 9 is not supported .*versions 1, 2, 3"):
        compress.unpack(forge(v3, version=9), "x.aecz")
    # a version-2 file (one level, the CompressAI table) still decodes, to the same pixels
    y = rdcodec.latents(codec, images[:50])
    v2 = version2_file(codec, y, 1, block=20)
    packed = compress.unpack_rd(v2)
    assert (packed.version, packed.levels, packed.level) == (2, {1: 50}, 1) and ae
    assert torch.equal(compress.decompress_rd(v2, codec), compress.decompress_rd(compress.pack_rd(codec, y, 1), codec))


def mixture_codec(images, mixtures=3):
    from aecore.codec_train import fit_mixtures
    model = small_codec()
    model.set_mixtures(fit_mixtures(model, images, mixtures, iterations=3, log=lambda *a, **k: None))
    return model


def test_mixture_tables_code_each_digit_with_its_best_table_bit_exactly(mnist_test, tmp_path):
    fit, held = mnist_test[0][:1000], mnist_test[0][1000:1300]
    plain, mixed = small_codec(), mixture_codec(fit)
    for k in range(mixed.levels):
        mix = mixed.mixture(k)
        assert 1 < len(mix["freq"]) <= 3 and int(mix["prior"].sum()) == 1000 and int(mix["freq"].min()) >= 1
    y = rdcodec.latents(mixed, held)
    for level in range(mixed.levels):
        coder, symbols = mixed.coders()[level], rdcodec.to_symbols(mixed, y, level)
        tables = coder.choose(symbols)
        assert len(np.unique(tables)) > 1                       # the digits do not all pick one table
        first, second = compress.pack_rd(mixed, y, level, block=128), compress.pack_rd(mixed, y, level, block=128)
        assert first == second                                  # compress twice: the same bytes
        decoded = compress.decompress_rd(first, mixed)
        assert torch.equal(decoded, rdcodec.from_symbols(mixed, symbols, level))
        # the tables fitted to digits code other digits in fewer bytes than the checkpoint's own
        assert len(first) < 0.8 * len(compress.pack_rd(plain, y, level, block=128))
        # the coded size is what the coder's cost estimate says, within a flush per block
        assert abs(sum(len(p) for p in compress.unpack_rd(first).payloads) - coder.costs(symbols).sum() / 8) < 3 * 4
    # the mixtures travel in the checkpoint, and the fingerprint covers them
    path = save_checkpoint(mixed, tmp_path / "mixed.pt")
    reloaded = rdcodec.load_codec(path)
    assert compress.model_fingerprint(reloaded) == compress.model_fingerprint(mixed) != compress.model_fingerprint(plain)
    data = compress.pack_rd(mixed, y, 1)
    assert torch.equal(compress.decompress_rd(data, reloaded), compress.decompress_rd(data, mixed))
    with pytest.raises(CompressError, match="not with this rd_codec"):
        compress.decompress_rd(data, plain)


def test_forged_mixture_tables_in_a_checkpoint_are_refused(mnist_test):
    mixed = mixture_codec(mnist_test[0][:500], 2)
    ckpt = torch.load(__import__("io").BytesIO(checkpoint_bytes(mixed)), weights_only=True)
    cases = {"mix0_freq": ("frequencies must be 1..", lambda t: t * 0),
             "mix1_prior": ("one prior count per table", lambda t: torch.cat([t, t])),
             "mix1_freq": ("freq must be", lambda t: t[:, :-1])}
    for key, (reason, forged) in cases.items():
        bad = {**ckpt, "state_dict": {**ckpt["state_dict"], key: forged(ckpt["state_dict"][key])}}
        with pytest.raises(CheckpointError, match=reason):
            rdcodec.from_checkpoint(bad, "forged.pt")
    many = {**ckpt, "state_dict": {**ckpt["state_dict"], "mix0_freq": torch.ones(65, ckpt["state_dict"]["mix0_freq"].shape[1], dtype=torch.int16),
                                   "mix0_prior": torch.ones(65, dtype=torch.int32)}}
    with pytest.raises(CheckpointError, match="1..64 tables"):
        rdcodec.from_checkpoint(many, "forged.pt")


def test_each_digit_can_have_its_own_level(codec, images):
    y = rdcodec.latents(codec, images)
    levels = np.arange(len(images)) % 3 % 2            # both levels, unevenly
    data = compress.pack_rd(codec, y, levels, block=128)
    packed = compress.unpack_rd(data)
    assert packed.levels == {0: 200, 1: 100} and packed.level is None
    at = [rdcodec.from_symbols(codec, rdcodec.to_symbols(codec, y, k), k) for k in range(2)]
    expected = torch.where(torch.from_numpy(levels == 1)[:, None, None, None], at[1], at[0])
    assert torch.equal(compress.decompress_rd(data, codec), expected)
    with pytest.raises(CompressError, match="level must be 0..1"):
        compress.pack_rd(codec, y, levels + 1)


def test_rate_control_gives_the_best_psnr_that_fits_the_budget():
    """allocate: a Lagrangian choice per digit; against every single-level choice and
    against a brute force over all assignments of a few digits."""
    import itertools
    g = np.random.default_rng(0)
    bits = np.sort(g.uniform(20, 400, (6, 4)), axis=1)            # higher levels cost more ...
    psnr = np.sort(g.uniform(15, 35, (6, 4)), axis=1)             # ... and look better
    costs = {"bits": bits, "psnr": psnr}
    entropy = lambda lv: -sum(p * np.log2(p) for p in np.bincount(lv) / len(lv) if p > 0) * len(lv)
    total = lambda lv: bits[np.arange(6), lv].sum() + entropy(lv)
    for budget in (200, 600, 1000, 1500, 2600):
        levels = rdcodec.allocate(costs, budget)
        assert total(levels) <= budget or (levels == 0).all()
        best = max((psnr[np.arange(6), list(lv)].sum() for lv in itertools.product(range(4), repeat=6)
                    if total(np.array(lv)) <= budget), default=None)
        if best is not None:   # a Lagrangian choice is on the convex hull: close to the best, never above it
            got = psnr[np.arange(6), levels].sum()
            assert got <= best + 1e-9 and got >= best - 12
        for k in range(4):     # at least as good as any one level for all digits that fits
            if total(np.full(6, k)) <= budget:
                assert psnr[np.arange(6), levels].sum() >= psnr[:, k].sum() - 1e-9


def test_commands_write_and_read_codec_files(codec, tmp_path, capsys, mnist_test):
    ckpt = save_checkpoint(codec, tmp_path / "codec.pt")
    file, npy = tmp_path / "d.aecz", tmp_path / "d.npy"
    assert run_cli("compress", "--count", 40, "--checkpoint", ckpt, "--level", 1, "--out", file) == 0
    line = capsys.readouterr().out
    assert f"{file}: 40 images with codec.pt at level 1 (λ 100): {file.stat().st_size} bytes" in line
    data = file.read_bytes()
    assert data == compress.compress_rd(codec, mnist_test[0][:40], 1)
    assert run_cli("decompress", file, "--checkpoint", ckpt, "--out", npy) == 0
    assert np.array_equal(np.load(npy), compress.decompress_rd(data, codec).numpy())
    with pytest.raises(CompressError, match="--level must be 0..1 for this codec, got 5"):
        run_cli("compress", "--count", 4, "--checkpoint", ckpt, "--level", 5, "--out", tmp_path / "e.aecz")
    with pytest.raises(CompressError, match="give --level or --target-bytes, not both"):
        run_cli("compress", "--count", 4, "--checkpoint", ckpt, "--level", 1, "--target-bytes", 10,
                "--out", tmp_path / "e.aecz")
    with pytest.raises(CompressError, match="a positive number of bytes per digit, got -3"):
        run_cli("compress", "--count", 4, "--checkpoint", ckpt, "--target-bytes", -3, "--out", tmp_path / "e.aecz")
    assert not (tmp_path / "e.aecz").exists()
    assert run_cli("compress", "--count", 40, "--checkpoint", ckpt, "--target-bytes", 900, "--out", file,
                   "--force") == 0
    assert "at most 900 bytes per digit (digits per level:" in capsys.readouterr().out
    assert file.stat().st_size <= 900 * 40


def test_a_refused_file_leaves_no_output(codec, images, tmp_path, capsys):
    from aecore.cli import main
    ckpt = save_checkpoint(codec, tmp_path / "codec.pt")
    bad = tmp_path / "bad.aecz"
    bad.write_bytes(forge(compress.compress_rd(codec, images[:5], 0), count=10 ** 6))
    for out in (tmp_path / "x.npy", tmp_path / "pngs"):
        assert main(["decompress", str(bad), "--checkpoint", str(ckpt), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {bad}: ") and "1000000 images" in err and "\n" not in err
        assert not out.exists()
    huge = tmp_path / "huge.aecz"
    with open(huge, "wb") as f:          # sparse: nothing is written or read
        f.truncate(compress.MAX_FILE_BYTES + 1)
    assert main(["decompress", str(huge), "--checkpoint", str(ckpt), "--out", str(tmp_path / "y.npy")]) == 2
    assert "over the 268,435,456-byte limit" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()


def test_tables_from_compressai_code_as_compactly_as_its_own_coder(mnist_test):
    """The tables a CompressAI EntropyBottleneck builds (what training ships) drive our range
    coder to about the size CompressAI's own coder reaches with them, and decode exactly."""
    compressai = pytest.importorskip("compressai.entropy_models")
    from aecore.codec_train import table_of
    torch.manual_seed(0)
    codec = rdcodec.RDCodec(channels=2, width=16, lambdas=(100.0,))
    eb = compressai.EntropyBottleneck(codec.code_size, init_scale=4)
    y = rdcodec.latents(codec, mnist_test[0][:400]) * 8
    opt = torch.optim.Adam(eb.parameters(), lr=0.05)
    for _ in range(60):                                   # fit the densities (and quantiles) a little
        _, lik = eb(y.reshape(-1, codec.code_size, 1, 1))
        loss = -torch.log2(lik).sum() / 400 + eb.loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    eb.eval()
    codec.set_tables([table_of(eb)])
    ours = compress.pack_rd(codec, y, 0, block=400)
    payload = sum(len(p) for p in compress.unpack_rd(ours).payloads)
    theirs = sum(len(s) for s in eb.compress(y.reshape(-1, codec.code_size, 1, 1)))
    assert payload < theirs              # one stream for all digits, no escapes, no per-digit flush
    symbols = rdcodec.to_symbols(codec, y, 0)
    assert np.array_equal(codec.coders()[0].decode(compress.unpack_rd(ours).payloads[0], 400), symbols)
    # what CompressAI decodes, we decode: the same quantised latents (up to our clipping to the tables)
    theirs_y = eb.decompress(eb.compress(y.reshape(-1, codec.code_size, 1, 1)), (1, 1)).reshape(400, -1)
    ours_y = codec.coders()[0].values(symbols)
    inside = (ours_y - theirs_y).abs() < 1e-4
    assert inside.float().mean() > 0.99


def test_an_uploaded_digit_becomes_one_mnist_digit():
    from io import BytesIO

    from PIL import Image
    canvas = Image.new("L", (200, 120), 255)
    canvas.paste(0, (90, 20, 110, 100))               # a dark stroke on white: a "1"
    buffer = BytesIO()
    canvas.save(buffer, "PNG")
    digit = compress.digit_from_bytes(buffer.getvalue(), "one.png")
    assert digit.shape == (1, 1, 28, 28) and digit.max() == 1 and digit[0, 0, :, :4].max() == 0
    with pytest.raises(CompressError, match="blank.png: no digit"):
        blank = BytesIO()
        Image.new("L", (50, 50), 255).save(blank, "PNG")
        compress.digit_from_bytes(blank.getvalue(), "blank.png")
    with pytest.raises(CompressError, match="junk.png: "):
        compress.digit_from_bytes(b"not an image", "junk.png")


def shipped_codec():
    codecs = [(n, m) for n, _, m, _ in rdcodec.shipped_codecs() if m is not None]
    if not codecs:
        pytest.skip("no shipped codec in weights/codec/")
    return codecs[0]


@pytest.mark.slow
def test_compress_then_decompress_of_the_test_split_reproduces_the_table(tmp_path, mnist_test, capsys):
    """Issue 13, done when: the commands on the whole test split give the table's bytes and PSNR."""
    from aecore import metrics
    name, codec = shipped_codec()
    rows = [r for r in compress.read_rate_distortion()["rows"] if r["method"] == name]
    if not rows:
        pytest.skip("docs/rate_distortion.json has no rows of the shipped codec yet")
    row = max((r for r in rows if r["bytes_per_image"] <= 16), key=lambda r: r["psnr"])   # the ≤ 16 B figure
    rate = ("--level", row["level"]) if row.get("level") is not None else ("--target-bytes", row["target_bytes"])
    file, npy = tmp_path / "test.aecz", tmp_path / "test.npy"
    assert run_cli("compress", "--model", name, *rate, "--out", file) == 0
    assert run_cli("decompress", file, "--out", npy) == 0          # finds the shipped codec by fingerprint
    assert file.stat().st_size / 10_000 == pytest.approx(row["bytes_per_image"], rel=2e-3)
    decoded = torch.from_numpy(np.load(npy))
    assert float(metrics.psnr(decoded, mnist_test[0]).mean()) == pytest.approx(row["psnr"], abs=0.02)


def test_the_shipped_codec_is_small_and_records_its_command():
    name, codec = shipped_codec()
    from aecore.manifest import read_manifest
    from aecore.paths import weights_dir
    folder = weights_dir() / rdcodec.CODEC_FOLDER
    entries = read_manifest(folder)
    assert sum((folder / e["file"]).stat().st_size for e in entries) <= 4 * 2 ** 20
    entry = next(e for e in entries if e["file"].startswith(name))
    assert entry["command"].startswith("python -m aecore.codec_train ") and "--steps" in entry["command"]
    sizes = [r["bytes_per_image"] for r in entry["metrics"]["levels"]]
    assert sizes == sorted(sizes) and len(sizes) == codec.levels          # each λ a larger file


def test_forged_level_lists_are_refused(codec, images):
    y = rdcodec.latents(codec, images[:20])
    data = compress.pack_rd(codec, y, np.arange(20) % 2)
    meta_len = struct.unpack_from("<H", data, 16)[0]
    at = compress._FIXED2.size + meta_len + 16                      # the (level, digits) pairs
    pairs = lambda *p: with_crc(data[:at] + b"".join(struct.pack("<BI", *x) for x in p) + data[at + 10:-4])
    cases = {pairs((1, 10), (0, 10)): "distinct, in order", pairs((0, 10), (0, 10)): "distinct, in order",
             pairs((0, 10), (1, 11)): "count its digits", pairs((0, 0), (1, 20)): "count its digits",
             forge(data, level=200): "200 levels: 1 to 16"}
    for bad, reason in cases.items():
        with pytest.raises(CompressError, match=reason):
            compress.decompress_rd(bad, codec, "forged.aecz")
    with pytest.raises(CompressError, match="forged.aecz: level 5 is not one of this codec's 2 levels"):
        compress.decompress_rd(pairs((0, 10), (5, 10)), codec, "forged.aecz")


def test_a_file_whose_symbols_no_encoder_wrote_is_refused_with_a_message(mnist_test):
    """The checksum is right (it was recomputed) but the range-coded words are noise: the
    range decoder's own check turns into one line naming the file, for both versions."""
    images = mnist_test[0][:300]
    codec = mixture_codec(images[:200])
    y = rdcodec.latents(codec, images)
    g = np.random.default_rng(0)
    for data in (compress.pack_rd(codec, y, np.arange(300) % 2), version2_file(codec, y, 1)):
        payload = sum(len(p) for p in compress.unpack_rd(data).payloads)
        noise = g.integers(0, 256, payload, dtype=np.uint8).tobytes()
        bad = with_crc(data[:-4 - payload] + noise)
        with pytest.raises(CompressError, match="^noise.aecz: corrupt data"):
            compress.decompress_rd(bad, codec, "noise.aecz")


def test_a_file_made_to_a_size_fits_it_and_beats_every_level_that_fits(mnist_test):
    """compress --target-bytes: the whole file within the size, close to it, and at least the
    mean PSNR of any one level whose file fits."""
    from aecore import metrics
    name, codec = shipped_codec()
    images = mnist_test[0][:500]
    psnr = lambda data: float(metrics.psnr(compress.decompress_rd(data, codec), images).mean())
    fixed = [compress.compress_rd(codec, images, k) for k in range(codec.levels)]
    for target in (12, 16, 30):
        data, levels = compress.compress_rd_to_size(codec, images, target)
        assert (target - 0.25) * 500 < len(data) <= target * 500
        assert compress.unpack_rd(data).levels == {k: int(n) for k, n in enumerate(np.bincount(levels)) if n}
        ours = psnr(data)
        assert all(ours >= psnr(f) for f in fixed if len(f) <= target * 500)
    data, levels = compress.compress_rd_to_size(codec, images, 1)       # below the smallest level
    assert (levels == 0).all() and data == fixed[0]


def test_refit_adds_mixture_tables_to_a_codec_checkpoint_and_records_both_commands(tmp_path):
    from aecore import codec_train
    from aecore.manifest import read_manifest
    codec = small_codec()
    path = save_checkpoint(codec, tmp_path / "codec.pt", training={"command": "python -m aecore.codec_train --steps 9"})
    manifest = tmp_path / "manifest.json"
    argv = ["--refit", "--mixtures", "3,0", "--out", str(path), "--manifest", str(manifest)]
    threads = torch.get_num_threads()
    assert codec_train.main(argv + ["--threads", str(threads + 1)]) == 0
    assert torch.get_num_threads() == threads     # --threads holds for the command, not for its caller
    assert codec_train.main(argv) == 0
    refitted = rdcodec.load_codec(path)
    assert refitted.mixture(0) is not None and refitted.mixture(1) is None      # 0: the CompressAI table stays
    command = "python -m aecore.codec_train --steps 9 && python -m aecore.codec_train " + " ".join(argv)
    assert refitted.training_info["command"] == command
    assert read_manifest(tmp_path)[0]["command"] == command
    assert codec_train.main(argv) == 0                         # a second refit replaces the first
    assert rdcodec.load_codec(path).training_info["command"] == command
    with pytest.raises(SystemExit):
        codec_train.main(["--refit", "--mixtures", "99", "--out", str(path)])
