import pytest
import torch

import aecore
from aecore.jobs import TrainingJob
from aecore.models import UnknownModelError, is_autoencoder, model_options, model_spec, training_error
from aecore.trainer import ConfigError, TrainConfig
from aecore.trial import fit

MODELS = aecore.list_models()


@pytest.fixture(scope="module")
def batch(mnist_test):
    return mnist_test[0][:32]


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_range(name, batch):
    model = aecore.create_model(name)
    z = model.encode(batch)
    assert z.shape == (32, model.code_size)
    if is_autoencoder(model):
        assert model.decode(z).shape == (32, 1, 28, 28)
    else:   # a U-Net's skips are not in its code
        with pytest.raises(NotImplementedError, match="cannot rebuild a digit from its code alone"):
            model.decode(z)
    recon = model.reconstruct(batch)
    assert recon.shape == (32, 1, 28, 28)
    assert 0 <= recon.min() and recon.max() <= 1
    assert model.config == {**model_options(name), **{k: list(v) for k, v in model_options(name).items()
                                                      if isinstance(v, tuple)}}


@pytest.mark.parametrize("name", MODELS)
def test_code_size_is_configurable(name):
    default = model_options(name)["code_size"]   # another size: one the Train page offers, or the next
    size = next((s for s in model_spec(name).code_sizes if s != default), default + 1)
    model = aecore.create_model(name, code_size=size)
    assert model.code_size == size
    assert model.encode(torch.rand(2, 1, 28, 28)).shape == (2, size)


@pytest.mark.parametrize("name", MODELS)
def test_a_few_steps_lower_the_loss(name, batch):
    torch.manual_seed(0)
    model = aecore.create_model(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        torch.manual_seed(1)  # same VAE sample noise each step: compare like with like
        loss, _ = model.loss(batch, batch)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    assert model.loss(batch, batch)[0].item() < 0.9 * first


def test_the_unet_is_a_denoiser_with_skips_around_its_code(batch):
    """Not an autoencoder: its output depends on more than its code (two digits with the same
    code come out different), it has no code at all with code_size 0 (section 11's U-Net), and
    every way to train it refuses to without noise, with the reason."""
    assert [n for n in MODELS if not model_spec(n).autoencoder] == ["unet"]
    torch.manual_seed(0)
    net = aecore.create_model("unet", width=4, code_size=8)
    assert net.encode(batch).shape == (32, 8) and net(batch).shape == (32, 1, 28, 28)
    plain = aecore.create_model("unet", width=4, code_size=0)
    assert plain.encode(batch).shape == (32, 0) and not hasattr(plain.decoder, "code")
    with torch.no_grad():   # the code's last layer (8 -> 16x7x7) zeroed: every digit gets the same code's effect
        net.decoder.code[5].weight.zero_()
        a, b = net(batch[:1]), net(batch[1:2])
    assert not torch.equal(a, b)   # yet the outputs differ: the skips carry each digit's detail
    message = "unet is a denoiser, not an autoencoder: without noise its skip connections learn to copy"
    assert training_error("unet", None).startswith(message)
    assert training_error("unet", "gaussian") is None and training_error("simple", None) is None
    with pytest.raises(ConfigError, match=message):
        TrainingJob("unet", TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match=message):
        fit(net, TrainConfig(epochs=1))
    TrainingJob("unet", TrainConfig(epochs=1, noise="gaussian"))   # with noise it is accepted
    with pytest.raises(ValueError, match="code_size must be a whole number"):
        aecore.create_model("unet", code_size=-1)


def test_unet_options_deepen_the_inner_blocks_and_add_batch_norm(batch):
    """The defaults build exactly the first shipped U-Net's layers (its checkpoint loads by its
    state-dict keys); inner_convs adds 3x3 convolutions at 14x14 and 7x7 only, outer_convs at
    28x28, batch_norm puts one after every convolution (whose bias it makes redundant), and both
    train as one model."""
    convs = lambda m: [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]
    norms = lambda m: [c for c in m.modules() if isinstance(c, torch.nn.BatchNorm2d)]
    plain = aecore.create_model("unet", width=4, code_size=8)
    assert len(convs(plain)) == 10 and not norms(plain)
    assert [k for k in plain.state_dict() if k.startswith("decoder.down2.")] == [
        "decoder.down2.0.weight", "decoder.down2.0.bias", "decoder.down2.2.weight", "decoder.down2.2.bias"]
    deep = aecore.create_model("unet", width=4, code_size=8, inner_convs=3, batch_norm=True)
    assert len(convs(deep)) == 13 and len(norms(deep)) == 13
    assert all(c.bias is None for c in convs(deep))
    assert [len(convs(getattr(deep.decoder, b))) for b in ("down1", "down2", "bottom", "up2", "up1")] == [2, 3, 3, 3, 2]
    assert deep.config["inner_convs"] == 3 and deep.config["batch_norm"] is True
    outer = aecore.create_model("unet", width=4, code_size=8, outer_convs=3)
    blocks = ("down1", "down2", "bottom", "up2", "up1")
    assert [len(convs(getattr(outer.decoder, b))) for b in blocks] == [3, 2, 2, 2, 3]
    torch.manual_seed(0)
    fit(deep, TrainConfig(epochs=1, train_size=256, test_size=64, batch_size=64, noise="gaussian", noise_level=0.5))
    assert not deep.training   # in eval mode after training: batch norm uses its running statistics
    one, many = deep.reconstruct(batch[:1]), deep.reconstruct(batch[:8])[:1]
    assert torch.allclose(one, many, atol=1e-5)   # a digit's output does not depend on its batch


def test_unknown_model_names_the_choices():
    with pytest.raises(UnknownModelError, match="choose one of: simple, deep, conv"):
        aecore.create_model("resnet")


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid options: code_size, width, mode"):
        aecore.create_model("conv_upsample", colour="red")


@pytest.mark.parametrize("name,config,message", [
    ("simple", {"code_size": 0}, "code_size must be a positive integer"),
    ("conv", {"code_size": 50}, "multiple of 49"),
    ("conv_upsample", {"mode": "cubic"}, "mode must be"),
    ("vae", {"beta": -1}, "beta must be"),
    ("conv_upsample", {"encoder_convs": 0}, "encoder_convs must be a whole number from 1 to 4"),
    ("conv_upsample", {"encoder_convs": 2.5}, "encoder_convs must be a whole number from 1 to 4"),
    ("conv_upsample", {"decoder_convs": 5}, "decoder_convs must be a whole number from 1 to 4"),
    ("vae", {"decoder_convs": True}, "decoder_convs must be a whole number from 1 to 4"),
    ("conv_upsample", {"full_res_convs": -1}, "full_res_convs must be a whole number from 0 to 4"),
    ("conv_upsample", {"full_res_convs": 1, "upsample": "transpose4"}, "full_res_convs needs upsample='resize'"),
    ("unet", {"inner_convs": 0}, "inner_convs must be a whole number from 1 to 4"),
    ("unet", {"outer_convs": 5}, "outer_convs must be a whole number from 1 to 4"),
    ("unet", {"batch_norm": "yes"}, "batch_norm must be true or false"),
    ("unet", {"batch_norm": 1}, "batch_norm must be true or false"),
])
def test_bad_config_is_refused(name, config, message):
    with pytest.raises(ValueError, match=message):
        aecore.create_model(name, **config)


def test_course_presets():
    simple = aecore.create_model("simple")
    linears = [m for m in simple.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(784, 32), (32, 784)]
    conv = aecore.create_model("conv")
    kinds = [(type(m).__name__, getattr(m, "in_channels", None), getattr(m, "out_channels", None))
             for m in conv.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert kinds == [("Conv2d", 1, 16), ("Conv2d", 16, 4), ("ConvTranspose2d", 4, 16), ("ConvTranspose2d", 16, 1)]
    assert conv.code_size == 196


def test_vae_samples_are_images():
    vae = aecore.create_model("vae2d")
    samples = vae.sample(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    again = vae.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)


def test_encoder_convs_adds_convolutions_at_each_resolution():
    from torch import nn
    convs = lambda m: sum(isinstance(layer, nn.Conv2d) for layer in m.encoder)
    one, three = (aecore.create_model("conv_upsample", code_size=16, width=8, encoder_convs=k) for k in (1, 3))
    assert (convs(one), convs(three)) == (2, 6)
    x = torch.rand(4, 1, 28, 28)
    assert three.encode(x).shape == (4, 16) and three.reconstruct(x).shape == x.shape


def test_full_res_convs_work_at_28x28_in_encoder_and_decoder():
    from torch import nn
    seen = []
    model = aecore.create_model("conv_upsample", code_size=16, width=8, full_res_convs=2)
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            layer.register_forward_hook(lambda m, i, o: seen.append((o.shape[-1], m.stride[0])))
    x = torch.rand(4, 1, 28, 28)
    assert model.reconstruct(x).shape == x.shape
    plain = sum(isinstance(m, nn.Conv2d) for m in aecore.create_model("conv_upsample", code_size=16, width=8).modules())
    # two more at 28x28 (stride 1) before the encoder's first stride, two more before the output
    assert seen[:3] == [(28, 1), (28, 1), (14, 2)] and seen[-3:] == [(28, 1), (28, 1), (28, 1)]
    assert len(seen) == plain + 4
    assert aecore.create_model("conv_upsample", code_size=16, width=8).config["full_res_convs"] == 0


@pytest.mark.parametrize("name", ["conv_upsample", "vae"])
def test_decoder_convs_deepen_the_decoder_at_7_and_14(name):
    from torch import nn
    convs = lambda m: sum(isinstance(layer, nn.Conv2d) for layer in m.decoder)
    one, two = (aecore.create_model(name, code_size=16, width=8, decoder_convs=k) for k in (1, 2))
    assert convs(two) - convs(one) == 2
    x = torch.rand(4, 1, 28, 28)
    assert two.reconstruct(x).shape == x.shape


def test_default_decoder_convs_keep_the_seeded_weights():
    """A shipped checkpoint (trained before the option existed) must rebuild unchanged."""
    torch.manual_seed(0)
    default = aecore.create_model("conv_upsample", code_size=16, width=8)
    torch.manual_seed(0)
    explicit = aecore.create_model("conv_upsample", code_size=16, width=8, decoder_convs=1)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))


def test_bce_with_logits_matches_torch_in_value_and_gradient():
    import torch.nn.functional as F
    from aecore.models.base import bce_with_logits
    logits = torch.cat([torch.randn(500) * 4, torch.tensor([-90.0, -20.0, 0.0, 20.0, 90.0])]).requires_grad_()
    target = torch.rand(505)
    ours, probs = bce_with_logits(logits, target, with_probs=True)
    ours.backward()
    ours_grad = logits.grad.clone()
    logits.grad = None
    theirs = F.binary_cross_entropy_with_logits(logits, target)
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(ours_grad, logits.grad, atol=1e-8)
    assert torch.equal(probs, torch.sigmoid(logits.detach()))
    per_item = bce_with_logits(logits.detach(), target, reduction="none")
    expected = F.binary_cross_entropy_with_logits(logits.detach(), target, reduction="none")
    assert torch.allclose(per_item, expected, atol=2e-6) and torch.isfinite(per_item).all()
