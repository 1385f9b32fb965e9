"""The checkpoints shipped in `weights/`, listed by `weights/manifest.json`.

A missing or corrupt file makes only that model unavailable (with the reason);
the others still load."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .manifest import EXAMPLE_INDEX, pack_image, read_manifest
from .paths import WEIGHTS_ENV, weights_dir
from .models import Autoencoder, is_autoencoder

__all__ = ["ShippedModel", "shipped_models", "make_example", "read_manifest", "weights_dir", "WEIGHTS_ENV"]


@dataclass
class ShippedModel:
    name: str                       # file stem, e.g. "conv_upsample-32"
    entry: dict = field(default_factory=dict)   # the manifest entry (command, metrics, ...)
    model: Autoencoder | None = None
    error: str | None = None        # why `model` is None

    @property
    def is_denoiser(self) -> bool:
        return bool((self.entry.get("metrics") or {}).get("noise"))

    @property
    def is_autoencoder(self) -> bool:
        """Loaded, and rebuilds a digit from its code alone (not a U-Net: aecore.models.is_autoencoder)."""
        return self.model is not None and is_autoencoder(self.model)


def shipped_models(folder: Path | None = None) -> list[ShippedModel]:
    """Every model of the manifest; raises CheckpointError if the manifest itself is unusable."""
    folder, out = Path(folder or weights_dir()), []
    for entry in read_manifest(folder):
        name = Path(entry["file"]).stem
        try:
            out.append(ShippedModel(name, entry, load_checkpoint(Path(folder) / entry["file"])))
        except CheckpointError as e:
            out.append(ShippedModel(name, entry, None, str(e)))
    return out


@torch.no_grad()
def make_example(model: Autoencoder, test_images: torch.Tensor, index: int = EXAMPLE_INDEX) -> dict:
    """The manifest's example for `model`: test digit `index`, its code and its reconstruction
    (the Home page shows it without loading torch; tests/test_weights.py checks it is current)."""
    x = test_images[index:index + 1]
    return {"test_index": index, "input": pack_image(x[0].numpy()),
            "code": [round(float(v), 5) for v in model.encode(x)[0]],
            "reconstruction": pack_image(model.reconstruct(x)[0].numpy())}
