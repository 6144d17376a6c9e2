"""Image files in and out: decoding, input listing and atomic PNG writes.

One implementation shared by the training/eval pipeline
(:mod:`restorect_jax.data.input_pipeline`) and the restore CLI:

* :func:`read_image` — float32 RGB (H, W, 3) in [0, 1] with EXIF orientation
  applied, for inference on users' photos.
* :func:`read_image_uint8` — uint8 RGB (H, W, 3), pixels as stored (EXIF
  ignored unless asked), what the dataset pipeline reads.
* :func:`list_inputs` — a file, a folder or a glob to a sorted list of files;
  :func:`output_paths` names their outputs and rejects name collisions.
* :func:`write_png` — quantise to uint8 and write atomically, refusing to
  overwrite unless told to.

Conversions (both readers): grayscale (1, L, LA) is repeated to RGB; alpha
(RGBA, LA, PA) is dropped, not composited; palette, CMYK, YCbCr, ... are
converted by Pillow. 16-bit grayscale keeps its precision in the float reader
(``v / 65535``) and its high byte (``v >> 8``) in the uint8 reader. 16-bit
*RGB* PNGs are decoded by Pillow to 8 bits per channel (high byte) before they
reach this module, so they carry 8-bit precision in both readers. Float images
(mode ``F``) are rejected.

Errors: a missing file raises ``FileNotFoundError``; a corrupt, truncated or
otherwise undecodable file raises :class:`ImageReadError` (a ``ValueError``)
whose message names the file.

Example::

  inputs = image_io.list_inputs('photos/*.jpg')
  for src, dst in zip(inputs, image_io.output_paths(inputs, 'out')):
    img = image_io.read_image(src)          # (H, W, 3) float32
    image_io.write_png(restore(img), dst)   # refuses to overwrite
"""

from __future__ import annotations

import glob
import os
import struct
import uuid
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image
from PIL import ImageOps

from restorect_jax.ops import quantize

IMAGE_EXTENSIONS = frozenset(
    {'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm'}
)

# What Pillow raises on corrupt or truncated files (all re-raised as
# ImageReadError naming the file).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)

_MODES_16 = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


class ImageReadError(ValueError):
  """A file exists but cannot be decoded as an image; the message names it."""


# ----------------------------------------------------------------------------
# Reading.
# ----------------------------------------------------------------------------


def _gray16(im: Image.Image) -> np.ndarray:
  """16-bit (or 32-bit integer) grayscale as int64 clipped to [0, 65535]."""
  return np.clip(np.asarray(im).astype(np.int64), 0, 65535)


def _check_mode(im: Image.Image, path: str) -> None:
  if im.mode == 'F':
    raise ImageReadError(
        f'{path}: floating-point images (mode F) are not supported; save '
        'as 8- or 16-bit.'
    )


def _to_rgb_uint8(im: Image.Image, path: str) -> np.ndarray:
  """A decoded PIL image as RGB uint8 (H, W, 3)."""
  _check_mode(im, path)
  mode = im.mode
  if mode in _MODES_16:
    arr = (_gray16(im) >> 8).astype(np.uint8)
    return np.repeat(arr[..., None], 3, axis=-1)
  if mode in ('1', 'L', 'LA', 'La'):
    arr = np.asarray(im.convert('L'))
    return np.repeat(arr[..., None], 3, axis=-1)
  # RGB, RGBA/RGBa (alpha dropped, not composited), P/PA (palette), CMYK,
  # YCbCr, LAB, HSV: Pillow converts to RGB.
  return np.asarray(im.convert('RGB'))


def _to_rgb_float32(im: Image.Image, path: str) -> np.ndarray:
  """A decoded PIL image as RGB float32 (H, W, 3) in [0, 1]."""
  _check_mode(im, path)
  if im.mode in _MODES_16:
    arr = _gray16(im).astype(np.float32) * np.float32(1.0 / 65535.0)
    return np.repeat(arr[..., None], 3, axis=-1)
  return uint8_to_float32(_to_rgb_uint8(im, path))


def _decode(path: str, convert, exif_transpose: bool) -> np.ndarray:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Image file not found: {path}')
  try:
    with Image.open(path) as im:
      im.load()
      if exif_transpose:
        im = ImageOps.exif_transpose(im)
      arr = convert(im, path)
  except ImageReadError:
    raise
  except ValueError as e:
    raise ImageReadError(f'Cannot decode image {path}: {e}') from e
  except _DECODE_ERRORS as e:
    raise ImageReadError(f'Cannot decode image {path}: {e}') from e
  return np.ascontiguousarray(arr)


# uint8 -> float32 in [0, 1] as ``x * float32(1 / 255)``: the expression of
# the dataset pipeline, so an 8-bit file read by the restore CLI and by the
# evaluator gives bit-identical model inputs.
uint8_to_float32 = quantize.uint8_to_float32


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads an image file as float32 RGB (H, W, 3) in [0, 1].

  EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so a phone
  photo comes out the way viewers show it. 8-bit data is scaled by
  :func:`uint8_to_float32`; 16-bit grayscale by ``1 / 65535``. See the module
  docstring for the other conversions.

  Args:
    path: image file.

  Returns:
    float32 array (H, W, 3), values in [0, 1].

  Raises:
    FileNotFoundError: the file does not exist.
    ImageReadError: the file is not a readable image, or is corrupt or
      truncated (the message names the file).
  """
  return _decode(path, _to_rgb_float32, exif_transpose=True)


def read_image_uint8(
    path: str | os.PathLike[str], *, exif_transpose: bool = False
) -> np.ndarray:
  """Reads an image file as uint8 RGB (H, W, 3).

  By default the pixels are returned as stored (EXIF orientation ignored), as
  the dataset pipeline expects: ``lq``/``gt`` pairs are aligned as stored.
  16-bit grayscale keeps its high byte (``v >> 8``), which is what Pillow
  does to 16-bit RGB PNGs, so both 16-bit kinds agree; 32-bit integer mode
  ``I`` is clipped to the 16-bit range first.

  Args:
    path: image file.
    exif_transpose: apply the EXIF orientation tag.

  Returns:
    uint8 array (H, W, 3).

  Raises:
    FileNotFoundError: the file does not exist.
    ImageReadError: the file is not a readable image, or is corrupt or
      truncated (the message names the file).
  """
  return _decode(path, _to_rgb_uint8, exif_transpose=exif_transpose)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
  """(height, width) as stored, from the header (pixels are not decoded).

  Raises:
    ImageReadError: the header cannot be read (the message names the file).
  """
  path = os.fspath(path)
  try:
    with Image.open(path) as im:
      width, height = im.size
  except (ValueError, *_DECODE_ERRORS) as e:
    raise ImageReadError(f'Cannot read image header of {path}: {e}') from e
  return height, width


# ----------------------------------------------------------------------------
# Listing inputs.
# ----------------------------------------------------------------------------


def is_image_name(name: str) -> bool:
  """True for a non-hidden name with an extension in ``IMAGE_EXTENSIONS``."""
  base = os.path.basename(name)
  return (
      not base.startswith('.')
      and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS
  )


def list_image_names(folder: str | os.PathLike[str]) -> list[str]:
  """Sorted image file names (not paths) directly inside ``folder``.

  Non-recursive; hidden files, sub-folders and names without an image
  extension (case-insensitive, ``IMAGE_EXTENSIONS``) are skipped. The folder
  must exist.
  """
  folder = os.fspath(folder)
  return sorted(
      n
      for n in os.listdir(folder)
      if is_image_name(n) and os.path.isfile(os.path.join(folder, n))
  )


def _extensions() -> str:
  return ', '.join(sorted(IMAGE_EXTENSIONS))


def list_inputs(spec: str | os.PathLike[str]) -> list[str]:
  """Expands an input spec into a sorted list of image file paths.

  * an existing file → ``[spec]`` (any extension: naming a file is explicit;
    a non-image fails later in :func:`read_image` with a clear error);
  * an existing folder → its image files (see :func:`list_image_names`),
    joined to the folder path, sorted by name;
  * otherwise, if ``spec`` contains glob magic (``*``, ``?``, ``[``) → the
    matching files with an image extension, sorted (``**`` recurses).

  Sorting is plain string order (``10.png`` before ``2.png``), so the order is
  the same on every machine.

  Args:
    spec: a file, a folder or a glob pattern.

  Returns:
    A non-empty list of paths.

  Raises:
    FileNotFoundError: nothing exists at ``spec``, the folder holds no image
      files, or the glob matches no image files; the message names ``spec``.
  """
  spec = os.fspath(spec)
  if os.path.isfile(spec):
    return [spec]
  if os.path.isdir(spec):
    paths = [os.path.join(spec, n) for n in list_image_names(spec)]
    if not paths:
      raise FileNotFoundError(
          f'Input folder {spec} has no image files (non-recursive; '
          f'extensions: {_extensions()}).'
      )
    return paths
  if glob.has_magic(spec):
    matches = glob.glob(spec, recursive=True)
    paths = sorted(p for p in matches if os.path.isfile(p) and is_image_name(p))
    if not paths:
      what = (
          f'{len(matches)} matches but none is an image file'
          if matches
          else 'no matches'
      )
      raise FileNotFoundError(
          f'Input pattern {spec} found no image files ({what}; extensions: '
          f'{_extensions()}).'
      )
    return paths
  raise FileNotFoundError(f'Input not found: {spec} (no such file or folder).')


def output_paths(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    suffix: str = '.png',
) -> list[str]:
  """Output path of each input: ``out_dir/<input stem><suffix>``.

  Inputs from different folders or with different extensions can map to the
  same output (``a/x.jpg`` and ``b/x.png`` both give ``out/x.png``); that is
  an error here rather than a silent overwrite or a refusal half-way through
  a folder.

  Args:
    inputs: input file paths (e.g. from :func:`list_inputs`).
    out_dir: output folder.
    suffix: output extension, with the dot.

  Returns:
    One path per input, in order.

  Raises:
    ValueError: two inputs map to the same output; both are named.
  """
  out_dir = os.fspath(out_dir)
  seen: dict[str, str] = {}
  paths = []
  for src in inputs:
    src = os.fspath(src)
    stem = os.path.splitext(os.path.basename(src))[0]
    dst = os.path.join(out_dir, stem + suffix)
    if dst in seen:
      raise ValueError(
          f'Inputs {seen[dst]} and {src} would both be written to {dst}; '
          'rename one or process them separately.'
      )
    seen[dst] = src
    paths.append(dst)
  return paths


# ----------------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------------


# Quantisation of [0, 1] floats to uint8 ('round': BasicSR ``tensor2img``,
# 'truncate': the RestoRect test script); the function the metrics use, so a
# written PNG scores what the evaluator scored.
to_uint8 = quantize.to_uint8


def write_png(
    img: np.ndarray,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    mode: Literal['round', 'truncate'] = 'round',
) -> str:
  """Writes an RGB or grayscale image as an 8-bit PNG, atomically.

  The image is quantised by :func:`to_uint8` (clip, ``x * 255``, round half
  to even unless ``mode='truncate'``), encoded into a temporary file in the
  destination folder, flushed to disk and moved into place, so ``path`` is
  either absent, the old file, or the complete new file — never a partial
  PNG. Without ``overwrite`` the final step is a hard link, which refuses an
  existing ``path`` atomically (on file systems without hard links the check
  and the move are separate steps). Parent folders are created.

  Args:
    img: (H, W, 3), (H, W, 1) or (H, W) array, float in [0, 1] or uint8 (a
      JAX array is copied to the host).
    path: destination; must end in ``.png`` (any case).
    overwrite: replace an existing file.
    mode: ``'round'`` (BasicSR ``tensor2img``) or ``'truncate'``.

  Returns:
    ``path`` as a string.

  Raises:
    FileExistsError: ``path`` exists and ``overwrite`` is False.
    ValueError: bad extension, dtype or image shape.
  """
  path = os.fspath(path)
  if os.path.splitext(path)[1].lower() != '.png':
    raise ValueError(f'write_png needs a .png path, got {path}.')
  arr = np.asarray(img)
  if arr.dtype != np.uint8 and (
      arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer)
  ):
    raise ValueError(
        f'Cannot write {path}: expected float values in [0, 1] or uint8, '
        f'got dtype {arr.dtype}.'
    )
  arr = to_uint8(arr, mode)
  if arr.ndim == 3 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
    raise ValueError(
        f'Cannot write {path}: expected an (H, W, 3), (H, W, 1) or (H, W) '
        f'image, got shape {np.shape(img)}.'
    )
  if not overwrite and os.path.lexists(path):
    raise FileExistsError(f'Output exists (pass overwrite=True): {path}')
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = os.path.join(
      folder, f'.{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp'
  )
  # 0o666 minus the umask, the permissions open(path, 'w') would give.
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, 'wb') as f:
      Image.fromarray(arr).save(f, format='PNG')
      f.flush()
      os.fsync(f.fileno())
    if overwrite:
      os.replace(tmp, path)
    else:
      try:
        os.link(tmp, path)
      except FileExistsError:
        raise FileExistsError(
            f'Output exists (pass overwrite=True): {path}'
        ) from None
      except OSError:
        # No hard links here (e.g. some network or FUSE file systems).
        if os.path.lexists(path):
          raise FileExistsError(
              f'Output exists (pass overwrite=True): {path}'
          ) from None
        os.replace(tmp, path)
  finally:
    if os.path.lexists(tmp):
      os.remove(tmp)
  return path
