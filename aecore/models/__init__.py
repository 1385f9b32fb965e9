"""A registry of autoencoders (after timm): `list_models()`, `create_model(name, **config)`.

Each entry is a constructor with keyword-only arguments; the arguments it was built with
are kept on the model as `config`, so a checkpoint can rebuild it."""
from __future__ import annotations

import inspect
from typing import Callable

from .base import Autoencoder
from .conv import ConvAutoencoder, UpsampleConvAutoencoder
from .dense import DenseAutoencoder
from .vae import VAE

_REGISTRY: dict[str, tuple[Callable[..., Autoencoder], dict, str]] = {}
_LR: dict[str, float] = {}
DEFAULT_LR = 2e-3


def register_model(name: str, builder, description: str, *, lr: float = DEFAULT_LR, **preset) -> None:
    """`lr`: the Adam learning rate that trains this model well (the trainer's default)."""
    _REGISTRY[name] = (builder, preset, description)
    _LR[name] = lr


# one 784x32 layer each way is happy with large steps: 1e-2 reaches a given test MSE
# about 2.5x sooner than 2e-3 (bench/train_speed.py); the deeper models are not
register_model("simple", DenseAutoencoder, "784 -> code (ReLU) -> 784 (sigmoid): the course model",
               lr=1e-2, hidden=(), code_activation="relu")
register_model("deep", DenseAutoencoder, "fully connected 784-1000-500-250-code and back")
register_model("conv", ConvAutoencoder, "conv + max-pool encoder, transpose-convolution decoder (the course model)")
register_model("conv_upsample", UpsampleConvAutoencoder, "strided-conv encoder, upsample + conv decoder (no checkerboard)")
register_model("vae", VAE, "variational autoencoder, convolutional")
register_model("vae2d", VAE, "variational autoencoder with a 2-D code you can plot", code_size=2)


class UnknownModelError(ValueError):
    pass


def list_models() -> list[str]:
    return list(_REGISTRY)


def recommended_lr(name: str | None) -> float:
    """The learning rate `name` trains well with; DEFAULT_LR for unknown names."""
    return _LR.get(name, DEFAULT_LR)


def describe_model(name: str) -> str:
    return _entry(name)[2]


def _entry(name: str):
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def model_options(name: str) -> dict:
    """The configurable options of `name` with their default values (preset applied)."""
    builder, preset, _ = _entry(name)
    params = inspect.signature(builder).parameters
    return {k: preset.get(k, p.default) for k, p in params.items()}


def create_model(name: str, **config) -> Autoencoder:
    """Build model `name`; `config` overrides its defaults. Unknown options are refused
    with a message naming the valid ones."""
    builder, _, _ = _entry(name)
    options = model_options(name)
    unknown = sorted(set(config) - set(options))
    if unknown:
        raise ValueError(f"model {name!r} has no option {', '.join(unknown)}; "
                         f"valid options: {', '.join(options)}")
    full = options | config
    full = {k: tuple(v) if isinstance(v, list) else v for k, v in full.items()}
    model = builder(**full)
    model.name = name
    model.config = {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}
    return model.eval()


__all__ = ["Autoencoder", "create_model", "list_models", "model_options", "describe_model", "recommended_lr",
           "register_model", "UnknownModelError"]
