"""A registry of autoencoders (after timm): `list_models()`, `create_model(name, **config)`,
and one `ModelSpec` per architecture holding everything the project knows about it.

Each builder takes keyword-only arguments; the arguments a model was built with are kept
on it as `config`, so a checkpoint can rebuild it. Adding an architecture: one model file
and one `register_model` call here. One entry is not an autoencoder (`autoencoder=False`:
the U-Net, a denoiser whose skips go around its code); the pages that need a code that
rebuilds the digit leave it out (ui.available_models), and it trains only on noise."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from .base import Autoencoder, in_batches
from .conv import ConvAutoencoder, UpsampleConvAutoencoder
from .dense import DenseAutoencoder
from .unet import UNetDenoiser
from .vae import VAE

DEFAULT_LR = 2e-3
DEFAULT_CODE_SIZES = (2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., Autoencoder]
    description: str
    preset: dict = field(default_factory=dict)        # builder arguments fixed by this entry
    lr: float = DEFAULT_LR                            # the Adam rate it trains well with (trainer default)
    code_sizes: tuple[int, ...] = DEFAULT_CODE_SIZES  # offered by the Train page
    train_code_size: int = 32                         # the Train page's default
    epochs: int = 1                                   # the Train page's default run (bench: precision)
    batch_size: int = 128                             # … and its batch size
    run_lr: float | None = None                       # … and its rate, where not `lr` (the CLI's default)
    can_sample: bool = False                          # decodes new digits from a prior (a VAE)
    bf16: bool = True                                 # precision "auto" trains it in bf16 where the CPU has the units
    autoencoder: bool = True                          # rebuilds a digit from its code alone (False: a U-Net)


_REGISTRY: dict[str, ModelSpec] = {}


class UnknownModelError(ValueError):
    pass


def register_model(name: str, builder, description: str, **spec) -> ModelSpec:
    """`spec`: ModelSpec fields; any other keyword is a preset builder argument."""
    fields = set(ModelSpec.__dataclass_fields__)
    preset = {k: v for k, v in spec.items() if k not in fields}
    _REGISTRY[name] = ModelSpec(name, builder, description, preset=preset,
                                **{k: v for k, v in spec.items() if k in fields})
    return _REGISTRY[name]


# simple: one 784x32 layer each way is happy with large steps (1e-2 reaches a given test
# MSE sooner than 2e-3: bench/train_speed.py); the deeper models are not.
# epochs: the Train page's default run; each reaches PCA-32 quality (test MSE 0.0152) on one
# core within the time docs/PRECISION.md measures (python -m bench --only precision): all but vae2d within
# 30 s here, and conv_upsample to test MSE 0.0050 within a minute.
# bf16: its matrix products are too small for the casts to pay (bench: precision, simple is
# slower in bf16), so "auto" trains it in fp32.
register_model("simple", DenseAutoencoder, "784 -> code (ReLU) -> 784 (sigmoid): the course model",
               lr=1e-2, epochs=5, bf16=False, hidden=(), code_activation="relu")
register_model("deep", DenseAutoencoder, "fully connected 784-1000-500-250-code and back", epochs=4)
# conv: at batch 128 and 2e-3 it stalls above PCA-32's test MSE; 5e-3 on batches of 64 passes it
# soon (bench/precision.py)
register_model("conv", ConvAutoencoder, "conv + max-pool encoder, transpose-convolution decoder (the course model)",
               code_sizes=(49, 98, 196, 392), train_code_size=196, epochs=2, lr=5e-3, batch_size=64)
# conv_upsample: its default run is the one that must reach test MSE 0.0050 within a minute (issue 16):
# 4 epochs at 3e-3 do (2e-3, the rate its shipped commands train with, ends at 0.0053)
register_model("conv_upsample", UpsampleConvAutoencoder,
               "strided-conv encoder, upsample + conv decoder (no checkerboard)", epochs=4, run_lr=3e-3)
register_model("vae", VAE, "variational autoencoder, convolutional", train_code_size=16, epochs=2, can_sample=True)
register_model("vae2d", VAE, "variational autoencoder with a 2-D code you can plot",
               code_sizes=(2,), train_code_size=2, epochs=1, can_sample=True, code_size=2)
# unet: a denoiser, not an autoencoder (aecore/models/unet.py); 1e-3 is the rate its shipped
# command and bench sections 11 and 13 train it with. One epoch: about 2 minutes on 2 cores.
register_model("unet", UNetDenoiser, "U-Net denoiser: skip connections around a dense code (not an autoencoder; "
               "trains on noise only)", autoencoder=False, lr=1e-3, code_sizes=(64, 128, 256), train_code_size=256)


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _spec_says(model, flag: str):
    """`flag` of `model`'s architecture spec, or ModelSpec's default for a model no entry names."""
    spec = _REGISTRY.get(getattr(model, "name", None))
    return getattr(spec, flag) if spec else ModelSpec.__dataclass_fields__[flag].default


def can_sample(model) -> bool:
    """Whether `model` decodes new digits from a prior (its architecture's spec says so)."""
    return _spec_says(model, "can_sample")


def is_autoencoder(model) -> bool:
    """Whether `model` rebuilds a digit from its code alone (its spec; True for unregistered ones)."""
    return _spec_says(model, "autoencoder")


def training_error(name: str, noise: str | None) -> str | None:
    """Why architecture `name` cannot be trained with `noise` (None: no noise), or None if it can:
    a model that is not an autoencoder would learn to copy a clean input through its skips."""
    if name in _REGISTRY and not _REGISTRY[name].autoencoder and noise is None:
        return (f"{name} is a denoiser, not an autoencoder: without noise its skip connections learn to "
                f"copy the input; choose a noise kind to train it")
    return None


def bf16_pays(model) -> bool:
    """Whether bf16 autocast speeds up training `model` (its spec; True for unregistered ones)."""
    return _spec_says(model, "bf16")


def default_run_lr(name: str) -> float:
    """The Train page's default run's learning rate for architecture `name`."""
    spec = model_spec(name)
    return spec.run_lr or spec.lr


def recommended_lr(name: str | None) -> float:
    """The learning rate `name` trains well with; DEFAULT_LR for unknown names."""
    return _REGISTRY[name].lr if name in _REGISTRY else DEFAULT_LR


def describe_model(name: str) -> str:
    return model_spec(name).description


def model_options(name: str) -> dict:
    """The configurable options of `name` with their default values (preset applied)."""
    spec = model_spec(name)
    params = inspect.signature(spec.builder).parameters
    return {k: spec.preset.get(k, p.default) for k, p in params.items()}


def create_model(name: str, **config) -> Autoencoder:
    """Build model `name`; `config` overrides its defaults. Unknown options are refused
    with a message naming the valid ones."""
    spec = model_spec(name)
    options = model_options(name)
    unknown = sorted(set(config) - set(options))
    if unknown:
        raise ValueError(f"model {name!r} has no option {', '.join(unknown)}; "
                         f"valid options: {', '.join(options)}")
    full = options | config
    full = {k: tuple(v) if isinstance(v, list) else v for k, v in full.items()}
    model = spec.builder(**full)
    model.name = name
    model.config = {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}
    return model.eval()


__all__ = ["Autoencoder", "in_batches", "ModelSpec", "bf16_pays", "can_sample", "create_model", "is_autoencoder",
           "list_models", "model_spec", "model_options", "training_error", "default_run_lr", "describe_model",
           "recommended_lr", "register_model", "UnknownModelError"]
