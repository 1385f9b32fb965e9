"""The classic baseline for random erasing: inpainting, which fills the erased pixels in
from their surroundings. It is *told* which pixels were erased (the mask), an advantage
the autoencoders do not get: they must find the hole themselves. OpenCV's Navier-Stokes
method (Bertalmio, Bertozzi & Sapiro, CVPR 2001) scores a little higher on erased MNIST
digits than its Telea method (`python -m bench --only denoise` prints both)."""
from __future__ import annotations

import numpy as np
import torch

INPAINTING = "inpainting (mask given)"
METHODS = ("ns", "telea")


def inpaint(noisy: torch.Tensor, mask: torch.Tensor, method: str = "ns", radius: int = 3) -> torch.Tensor:
    """Fill the pixels where `mask` (B,1,H,W) is true in each image of `noisy` (B,1,H,W),
    in [0,1], with OpenCV's inpainting ("ns": Navier-Stokes, "telea": Telea 2004)."""
    import cv2   # 0.1 s; only when an erased digit is inpainted
    if method not in METHODS:
        raise ValueError(f"inpainting method must be one of {', '.join(METHODS)}, got {method!r}")
    if noisy.shape != mask.shape or noisy.ndim != 4 or noisy.shape[1] != 1:
        raise ValueError(f"expected a batch (B,1,H,W) and a mask of the same shape, got "
                         f"{tuple(noisy.shape)} and {tuple(mask.shape)}")
    flag = cv2.INPAINT_NS if method == "ns" else cv2.INPAINT_TELEA
    pixels = (noisy.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    holes = mask.detach().cpu().to(torch.uint8).numpy()
    out = np.stack([cv2.inpaint(p[0], m[0], radius, flag) for p, m in zip(pixels, holes)])
    return torch.from_numpy(out).float().div_(255).unsqueeze(1).to(noisy.device)


inpaint.needs_mask = True
