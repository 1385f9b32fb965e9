"""aecore: MNIST autoencoders — data, models, training, checkpoints, metrics, preprocessing.

The public API (what the app, the benches and outside scripts use)::

    list_models(), create_model(name, **config)
    load_checkpoint(path_or_bytes), save_checkpoint(model, path, ...)
    load_mnist(split) -> (images (N,1,28,28) float32 in [0,1], labels (N,))
    train(model, train_images, test_images, TrainConfig(...), callback, stop)
    to_mnist(image) -> (28,28) float32 in [0,1], or None when there is no ink

and on every model: encode(x), decode(z), reconstruct(x), code_size (a model that is not an
autoencoder, the U-Net denoiser, refuses decode: aecore.models.is_autoencoder).

The names are imported on first use, so `import aecore` and the torch-free modules
(aecore.manifest, aecore.atomic) stay light: the Home page renders before torch loads.
"""
import importlib

__version__ = "0.1.0"

_WHERE = {"list_models": "models", "create_model": "models", "load_checkpoint": "checkpoint",
          "save_checkpoint": "checkpoint", "CheckpointError": "errors", "load_mnist": "data",
          "DataError": "data", "train": "trainer", "TrainConfig": "trainer", "to_mnist": "preprocess"}
__all__ = [*_WHERE, "__version__"]


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'aecore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value   # once only
    return value


def __dir__():
    return sorted({*globals(), *__all__})
