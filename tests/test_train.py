import math
import threading

import pytest
import torch

import aecore
from aecore.models import DEFAULT_LR, recommended_lr
from aecore.trainer import ConfigError, TrainConfig, TrainingDiverged, init_output_bias, schedule, train

TINY = dict(train_size=512, test_size=256, batch_size=64)


@pytest.fixture(scope="module")
def images(mnist_test):
    return mnist_test[0][:2000], mnist_test[0][-500:]


def _train(images, name="simple", callback=None, stop=None, seed=0, **config):
    torch.manual_seed(seed)
    model = aecore.create_model(name)
    result = train(model, *images, TrainConfig(**{**TINY, "seed": seed, **config}), callback, stop)
    return model, result


def test_reports_progress_and_lowers_the_test_loss(images):
    events = []
    model, result = _train(images, callback=events.append, epochs=3, lr=5e-3)
    batches = [e for e in events if e.event == "batch"]
    epochs = [e for e in events if e.event == "epoch"]
    assert len(batches) == 3 * 8 and len(epochs) == 3
    assert batches[-1].fraction == 1.0 and batches[0].fraction == pytest.approx(1 / 24)
    assert all(e.images_per_s > 0 and e.eta_s >= 0 for e in events)
    assert epochs[-1].eta_s == 0 and epochs[-1].test_mse == result.history["test_mse"][-1]
    h = result.history
    assert h["epoch"] == [1, 2, 3] and h["test_loss"][-1] < h["test_loss"][0]
    assert not result.stopped and not model.training


def test_same_seed_gives_the_same_weights(images):
    a, _ = _train(images, name="conv_upsample", seed=3, noise="gaussian", noise_level=0.3)
    b, _ = _train(images, name="conv_upsample", seed=3, noise="gaussian", noise_level=0.3)
    c, _ = _train(images, name="conv_upsample", seed=4, noise="gaussian", noise_level=0.3)
    same = [torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values())]
    assert all(same)
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_float16_weights_are_rounded_when_training_ends(images):
    full, _ = _train(images, epochs=1)
    half, _ = _train(images, epochs=1, weights_dtype="float16")
    pairs = list(zip(full.state_dict().values(), half.state_dict().values()))
    assert all(torch.equal(h, f.half().float()) for f, h in pairs)    # the same training, then rounded
    assert not all(torch.equal(f, h) for f, h in pairs)
    assert half.weights_dtype == "float16" and full.weights_dtype == "float32"


def test_uint8_training_images_give_the_same_weights(images):
    """load_mnist(as_uint8=True) -> train(): each batch converted to the very floats of
    load_mnist()'s images, so a checkpoint's command reproduces it bit for bit."""
    stored = (images[0] * 255).round().to(torch.uint8)
    assert torch.equal(stored.float() / 255, images[0])
    a, _ = _train(images, name="conv_upsample", epochs=1)
    b, _ = _train((stored, images[1]), name="conv_upsample", epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_stop_keeps_the_model_trained_so_far(images):
    stop = threading.Event()
    initial = aecore.create_model("simple").state_dict()

    def stop_after_three(p):
        if p.event == "batch" and p.batch == 3:
            stop.set()
    model, result = _train(images, callback=stop_after_three, stop=stop, epochs=5)
    assert result.stopped and result.history["epoch"] == []
    changed = [not torch.equal(a, b) for a, b in zip(initial.values(), model.state_dict().values())]
    assert any(changed)  # three steps were taken and kept
    x = images[1][:8]
    assert model.reconstruct(x).shape == x.shape


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_epoch(images):
    torch.manual_seed(0)
    model = aecore.create_model("simple")
    seen = {}

    def poison(p):
        if p.event == "epoch":
            seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
            with torch.no_grad():
                model.encoder[1].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="loss became nan in epoch 2, batch 1.*lower learning rate"):
        train(model, *images, TrainConfig(**TINY, epochs=3), poison)
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen["state"][k])


def test_denoising_objective_trains_on_noisy_inputs(images):
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.detach().clone())
            return x
    torch.manual_seed(0)
    model = aecore.create_model("simple")
    model.encoder.insert(0, Spy())
    train(model, images[0], None, TrainConfig(**TINY, epochs=1, noise="salt_pepper", noise_level=0.5))
    first = seen[0]
    assert ((first == 0) | (first == 1)).float().mean() > 0.5  # half the pixels are salt or pepper


@pytest.mark.parametrize("field,value,message", [
    ("lr", 10.0, "lr must be a number from 1e-06 to 1"), ("epochs", 0, "epochs must be an integer"),
    ("batch_size", 2.5, "batch_size must be an integer"), ("noise", "blur", "noise must be one of"),
    ("noise_level", -0.1, "noise_level must be"), ("epochs", True, "epochs must be"),
    ("loss", "l1", "loss must be"), ("train_size", 0, "train_size must be a positive integer"),
    ("warmup", -1, "warmup must be an integer from 0"), ("warmup", 1.5, "warmup must be an integer"),
    ("weights_dtype", "int8", "weights_dtype must be one of float32, float16"),
])
def test_out_of_range_settings_are_refused(field, value, message, images):
    with pytest.raises(ConfigError, match=message):
        _train(images, **{field: value})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_uses_cuda_when_present(images):
    model, _ = _train(images, epochs=1)
    assert next(model.parameters()).device.type == "cpu"  # returned to the CPU after training


def test_schedule_warms_up_then_decays_on_a_cosine():
    total = 1000
    factors = [schedule(s, total, 50) for s in range(total)]
    assert factors[0] == pytest.approx(1 / 51) and factors[49] == pytest.approx(50 / 51, rel=1e-2)
    assert all(a < b for a, b in zip(factors[:50], factors[1:51]))          # rising
    assert all(a >= b for a, b in zip(factors[51:], factors[52:]))          # then falling
    assert factors[-1] < 1e-4
    assert [schedule(s, total, 0) for s in range(total)] == [0.5 * (1 + math.cos(math.pi * s / total))
                                                            for s in range(total)]
    assert schedule(0, 40, 50) == pytest.approx(1 / 5)   # warm-up at most a tenth of a short run


@pytest.mark.parametrize("name, per_pixel", [("simple", True), ("deep", True), ("conv", False),
                                             ("conv_upsample", False), ("vae", False)])
def test_output_bias_starts_at_the_mean_image(images, name, per_pixel):
    torch.manual_seed(0)
    model = aecore.create_model(name)
    assert init_output_bias(model, images[0])
    bias = [m.bias for m in model.decoder.modules() if getattr(m, "bias", None) is not None][-1]
    mean = images[0].mean(0).flatten()
    expected = mean.clamp(1e-3, 1 - 1e-3) if per_pixel else mean.mean().reshape(1)
    assert torch.allclose(torch.sigmoid(bias.detach()), expected, atol=1e-5)


def test_lr_none_means_the_models_recommended_rate(images):
    _, simple = _train(images, epochs=1)
    _, deep = _train(images, name="deep", epochs=1)
    _, given = _train(images, epochs=1, lr=3e-4)
    assert simple.config["lr"] == recommended_lr("simple") == 1e-2
    assert deep.config["lr"] == recommended_lr("deep") == DEFAULT_LR
    assert given.config["lr"] == 3e-4 and recommended_lr("no such model") == DEFAULT_LR


def test_warmup_and_bias_init_train_the_simple_model_better(mnist_test):
    """The course model with its old settings (no warm-up, default bias, 2e-3) loses many ReLU
    codes early; the defaults keep them and reach a lower test MSE on the same budget."""
    train_x, test_x = mnist_test[0][:8000], mnist_test[0][8000:]
    results = {}
    for label, config in {"defaults": {}, "old": dict(warmup=0, init_bias=False, lr=2e-3)}.items():
        torch.manual_seed(0)
        result = train(aecore.create_model("simple"), train_x, test_x, TrainConfig(epochs=2, **config))
        results[label] = result.history["test_mse"][-1]
    assert results["defaults"] < 0.8 * results["old"], results


def test_a_loaded_checkpoint_keeps_its_output_bias(images, tmp_path):
    model, _ = _train(images, epochs=1)
    aecore.save_checkpoint(model, tmp_path / "m.pt")
    loaded = aecore.load_checkpoint(tmp_path / "m.pt")
    before = loaded.decoder[0].bias.detach().clone()
    train(loaded, *images, TrainConfig(**TINY, epochs=1, lr=1e-6, warmup=0))
    assert (loaded.decoder[0].bias - before).abs().max() < 1e-4   # moved by training only, not reset
