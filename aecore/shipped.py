"""The checkpoints shipped in `weights/`, listed by `weights/manifest.json`.

A missing or corrupt file makes only that model unavailable (with the reason);
the others still load."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .models import Autoencoder

WEIGHTS_ENV = "AECORE_WEIGHTS"   # another weights folder (tests, experiments)


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or Path(__file__).resolve().parent.parent / "weights")


@dataclass
class ShippedModel:
    name: str                       # file stem, e.g. "conv_upsample-32"
    entry: dict = field(default_factory=dict)   # the manifest entry (command, metrics, ...)
    model: Autoencoder | None = None
    error: str | None = None        # why `model` is None

    @property
    def is_denoiser(self) -> bool:
        return bool((self.entry.get("metrics") or {}).get("noise"))


def read_manifest(folder: Path | None = None) -> list[dict]:
    path = Path(folder or weights_dir()) / "manifest.json"
    try:
        return list(json.loads(path.read_text())["models"])
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} is missing: no shipped models to load") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from e


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
