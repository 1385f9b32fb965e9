"""Where the package finds the files shipped beside it: the trained weights (`weights/`)
and the measured tables it shows (`docs/`), both next to the `aecore` folder in the
repository. One setting moves the weights elsewhere (tests, experiments): the
AECORE_WEIGHTS environment variable. Torch-free."""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_ENV = "AECORE_WEIGHTS"   # another weights folder (tests, experiments)
PROJECT_DIR = Path(__file__).resolve().parent.parent   # the repository: weights/, docs/


def weights_dir() -> Path:
    """The shipped checkpoints and their manifest.json: $AECORE_WEIGHTS or weights/."""
    return Path(os.environ.get(WEIGHTS_ENV) or PROJECT_DIR / "weights")


def docs_dir() -> Path:
    """The measured tables (docs/rate_distortion.json, BENCHMARKS.md)."""
    return PROJECT_DIR / "docs"
