"""aecore: MNIST autoencoders — data, models, training, checkpoints, metrics, preprocessing.

The public API (what the app, the benches and outside scripts use)::

    list_models(), create_model(name, **config)
    load_checkpoint(path_or_bytes), save_checkpoint(model, path, ...)
    load_mnist(split) -> (images (N,1,28,28) float32 in [0,1], labels (N,))
    to_mnist(image) -> (28,28) float32 in [0,1], or None when there is no ink

and on every model: encode(x), decode(z), reconstruct(x), code_size.
"""
__version__ = "0.1.0"

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, load_mnist
from .models import create_model, list_models
from .train import TrainConfig, train

__all__ = ["list_models", "create_model", "load_checkpoint", "save_checkpoint", "load_mnist",
           "to_mnist", "train", "TrainConfig", "CheckpointError", "DataError", "__version__"]


def __getattr__(name):
    # preprocessing pulls in Pillow only when asked for
    if name == "to_mnist":
        from .preprocess import to_mnist
        return to_mnist
    raise AttributeError(name)
