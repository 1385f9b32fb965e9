"""The Compression page, headless: the rate–distortion chart and table from
docs/rate_distortion.json, and the live demo against the real compressor."""
import json

import pytest

from aecore.shipped import shipped_models
from aecore import compress

PAGE = "pages/6_Compression.py"


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_chart_and_table_come_from_the_benchmark_results(run_page):
    at = run_page(PAGE)
    assert not at.exception
    results = compress.read_rate_distortion()
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    names = {trace["name"] for trace in spec["data"]}
    assert {r["method"] for r in results["rows"] if r["family"] != "lossless"} == names
    assert spec["layout"]["yaxis"]["title"]["text"] == "mean PSNR (dB)"
    texts = [m.value for m in at.markdown]
    assert results["summary"]["text"] in texts
    table = at.dataframe[0].value            # a dataframe: on a phone it scrolls inside itself
    assert list(table["method"]) == [r["method"] for r in results["rows"]]
    assert list(table["bytes / image"]) == [round(r["bytes_per_image"], 1) for r in results["rows"]]
    at.radio[0].set_value("ssim").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not at.exception and spec["layout"]["yaxis"]["title"]["text"] == "mean SSIM"


def test_live_demo_reports_the_real_file_size(run_page, mnist_test):
    at = run_page(PAGE)
    models = {s.name: s.model for s in shipped_models() if s.model is not None and not s.is_denoiser}
    if not models:
        pytest.skip("no shipped autoencoder in weights/")
    label = at.selectbox[0].value
    images = mnist_test[0][:500]
    bits_slider = lambda: next(s for s in at.slider if s.label == "Bits per code number")
    for bits in (6, 2):
        bits_slider().set_value(bits).run()
        assert not at.exception
        data = compress.compress_images(models[label], images, bits)
        assert metric(at, "File size") == f"{len(data):,} bytes"
        assert metric(at, "Bytes per image") == f"{len(data) / 500:.1f}"
    # 8 originals, 8 decoded: each row one st.image holding its 8 digits (a phone wraps them);
    # the codec's rows first when a codec is shipped
    assert [len(i.proto.imgs) for i in at.get("image")][-2:] == [8, 8]
    assert len(at.get("download_button")) == 1


def test_psnr_and_ssim_are_explained_where_they_are_shown(run_page):
    """Issue 15.6: the quality picker, the table's columns and the live figures carry the
    explanations of PSNR and SSIM as tooltips."""
    from aecore.metric_help import MEANING
    at = run_page(PAGE)
    assert not at.exception
    both = lambda text: MEANING["psnr"] in text and MEANING["ssim"] in text
    assert both(at.radio[0].help)
    config = json.loads(at.dataframe[0].proto.columns)
    assert MEANING["psnr"] in config["PSNR dB"]["help"] and MEANING["ssim"] in config["SSIM"]["help"]
    if at.metric:   # the live demo needs a shipped autoencoder
        assert MEANING["psnr"] in next(m for m in at.metric if m.label == "Mean PSNR").help
        assert MEANING["ssim"] in next(m for m in at.metric if m.label == "Mean SSIM").help


def test_the_codec_rate_control_decodes_a_real_file_at_each_size(run_page, mnist_test):
    """Issue 13: pick a size per digit, see the test digits decoded from a real file of that size."""
    from aecore import rdcodec
    codecs = [(n, m) for n, _, m, _ in rdcodec.shipped_codecs() if m is not None]
    if not codecs:
        pytest.skip("no shipped codec in weights/codec/")
    codec = codecs[0][1]
    at = run_page(PAGE)
    assert not at.exception
    control = at.select_slider[0]
    assert control.value == 16 and tuple(control.options) == tuple(f"{b:g} B" for b in rdcodec.TARGET_SIZES)
    images = mnist_test[0][:200]
    seen = []
    for target in (16, 40):
        control.set_value(target).run()
        assert not at.exception
        data, levels = compress.compress_rd_to_size(codec, images, target)
        assert len(data) <= target * 200                             # the file meets its size
        assert metric(at, "Codec file") == f"{len(data):,} bytes"
        assert metric(at, "Bytes per digit") == f"{len(data) / 200:.1f}"
        assert "Digits per level: " in " ".join(c.value for c in at.caption)
        psnr = float(metric(at, "PSNR").split()[0])
        seen.append((len(data), psnr))
    assert seen[0][0] < seen[1][0] and seen[0][1] < seen[1][1]      # more bytes, better digits
    control.set_value(rdcodec.TARGET_SIZES[0]).run()                 # perhaps below the smallest level
    data, _ = compress.compress_rd_to_size(codec, images, rdcodec.TARGET_SIZES[0])
    too_small = "Even the smallest level is larger than the target." in " ".join(c.value for c in at.caption)
    assert too_small == (len(data) > rdcodec.TARGET_SIZES[0] * 200) and not at.exception
    assert [len(i.proto.imgs) for i in at.get("image")][:2] == [8, 8]
