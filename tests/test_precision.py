"""Training precision (issue 16): bfloat16 autocast where the hardware has bf16 units,
fp32 weights and loss, channels-last for convolutional models, a clear fallback."""
import pytest
import torch

import aecore
from aecore.precision import bf16_units, cpu_flags, resolve_precision
from aecore.trainer import ConfigError, TrainConfig, TrainingDiverged, train

CPU = torch.device("cpu")
NATIVE = bf16_units(CPU)
needs_bf16 = pytest.mark.skipif(not NATIVE, reason="this CPU has no bfloat16 units")
TINY = dict(train_size=4000, test_size=500, batch_size=64)


@pytest.fixture(scope="module")
def images(mnist_test):
    return mnist_test[0][:4000], mnist_test[0][-500:]


def test_auto_follows_the_hardware():
    assert resolve_precision("auto", CPU, frozenset({"avx2"})) == ("fp32", None)
    assert resolve_precision("auto", CPU, frozenset({"avx512_bf16"}))[0] == "bf16"
    assert resolve_precision("auto", CPU, frozenset({"amx_bf16"}))[0] == "bf16"
    assert resolve_precision("fp32", CPU, frozenset({"amx_bf16"})) == ("fp32", None)
    assert resolve_precision("auto", CPU) == ("bf16" if NATIVE else "fp32", None)
    assert NATIVE == bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def test_auto_keeps_fp32_where_bf16_does_not_pay():
    """The simple model's products are too small for bf16's casts to pay (bench: precision)."""
    amx = frozenset({"amx_bf16"})
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this torch")
    assert resolve_precision("auto", CPU, amx, model=aecore.create_model("simple"))[0] == "fp32"
    assert resolve_precision("auto", CPU, amx, model=aecore.create_model("deep"))[0] == "bf16"
    assert resolve_precision("bf16", CPU, amx, model=aecore.create_model("simple"))[0] == "bf16"   # asked for


def test_bf16_without_bf16_units_falls_back_to_fp32_with_one_line():
    used, note = resolve_precision("bf16", CPU, frozenset({"avx2", "avx512f"}))
    assert used == "fp32"
    assert "bf16 is not supported" in note and "fp32" in note and "\n" not in note


def test_unknown_precision_is_refused(images):
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16"):
        train(aecore.create_model("simple"), *images, TrainConfig(**TINY, precision="fp16"))


@needs_bf16
@pytest.mark.parametrize("name", ["conv_upsample", "vae"])
def test_bf16_trains_as_well_as_fp32_and_leaves_a_plain_fp32_model(images, name):
    """Same steps, same seed: the bf16 run's test MSE is within 15% of fp32's (the bench
    checks 5% on longer runs), and the model comes back fp32, contiguous, on the CPU."""
    mse = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = aecore.create_model(name, code_size=16)
        result = train(model, *images, TrainConfig(**TINY, epochs=2, precision=precision))
        assert result.precision == precision and result.config["precision"] == precision
        assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())
        assert not model.training
        mse[precision] = result.history["test_mse"][-1]
    assert mse["bf16"] <= 1.15 * mse["fp32"], mse
    mean_image_mse = (images[1] - images[0].mean(0)).pow(2).mean().item()
    assert mse["bf16"] < 0.8 * mean_image_mse   # it learnt more than the mean image


@needs_bf16
def test_a_nan_under_bf16_names_the_precision(images):
    torch.manual_seed(0)
    model = aecore.create_model("conv_upsample")

    def poison(p):
        if p.event == "epoch":
            with torch.no_grad():
                model.decoder[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"loss became nan in epoch 2, batch 1 \(precision bf16\).*"
                                              r"--precision fp32"):
        train(model, *images, TrainConfig(**TINY, epochs=3, precision="bf16"), poison)
    assert all(p.is_contiguous() and torch.isfinite(p).all() for p in model.parameters())


def test_a_failed_run_turns_denormal_flushing_off_again(images):
    """train() sets flush-denormal for its run; a run that raises must not leave it on for
    the whole process (a denormal then reads back as zero)."""
    def fail(p):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        train(aecore.create_model("simple"), *images, TrainConfig(**TINY, epochs=1), fail)
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    assert (tiny * 1).item() != 0.0


def test_evaluation_runs_a_conv_model_channels_last_and_gives_it_back_as_it_was(mnist_test):
    """`evaluate` runs convolutional models in the layout oneDNN prefers; the figures are the
    default layout's to float rounding, and the model comes back in the layout it had."""
    from aecore.evaluation import evaluate
    from aecore.precision import channels_last

    torch.manual_seed(0)
    model = aecore.create_model("conv_upsample").eval()
    images = mnist_test[0][:200]
    with torch.no_grad():
        reference = torch.nn.functional.mse_loss(model.reconstruct(images), images).item()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1)
    layouts = []
    conv.register_forward_pre_hook(lambda module, inputs: layouts.append(module.weight.is_contiguous()))
    mse = evaluate(model, images, metrics=("mse",))["mse"]
    assert mse == pytest.approx(reference, rel=1e-5)
    assert layouts and not any(layouts)            # it ran channels-last
    assert all(p.is_contiguous() for p in model.parameters())

    model.to(memory_format=torch.channels_last)    # a training's model is left in its layout
    with channels_last(model):
        pass
    assert not conv.weight.is_contiguous()
