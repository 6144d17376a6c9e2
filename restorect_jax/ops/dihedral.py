"""The 8 dihedral transforms (rotations and flips) and their inverses.

Numbering (the RestoRect / BasicSR augmentation modes): transform ``k``
makes ``k // 2`` counter-clockwise quarter turns (``rot90``), then flips
the rows (up-down) when ``k`` is odd: 0 identity, 1 flip, 2 rot90,
3 rot90 + flip, 4 rot180, 5 rot180 + flip, 6 rot270, 7 rot270 + flip. Odd
``k // 2`` swaps H and W. Used jointly on ``lq`` / ``gt`` by the training
pipeline and, with the inverse, by the x8 self-ensemble.
"""

from __future__ import annotations

from typing import Any

from restorect_jax.ops import padding

NUM_TRANSFORMS = 8


def _check(k: int) -> int:
  k = int(k)
  if not 0 <= k < NUM_TRANSFORMS:
    raise ValueError(f'Dihedral index must be in 0..7, got {k}.')
  return k


def dihedral(x: Any, k: int, axes: tuple[int, int] = (0, 1)) -> Any:
  """Transform ``k`` (0..7) of the two spatial ``axes`` of ``x``.

  Args:
    x: numpy or JAX array (the result has the same kind; numpy results are
      views).
    k: transform index.
    axes: the (H, W) axes, e.g. ``(0, 1)`` for an (H, W, C) image or
      ``(1, 2)`` for a (B, H, W, C) batch.

  Returns:
    The transformed array.
  """
  k = _check(k)
  xp = padding.array_module(x)
  y = xp.rot90(x, k // 2, axes=axes)
  if k % 2:
    y = xp.flip(y, axis=axes[0])
  return y


def inverse_dihedral(y: Any, k: int, axes: tuple[int, int] = (0, 1)) -> Any:
  """Undoes :func:`dihedral`: ``inverse_dihedral(dihedral(x, k), k)`` is x."""
  k = _check(k)
  xp = padding.array_module(y)
  if k % 2:
    y = xp.flip(y, axis=axes[0])
  return xp.rot90(y, -(k // 2), axes=axes)
