"""TensorFlow-free metric logging: JSONL, TensorBoard (tensorboardX), PNGs.

``clu.metric_writers`` and ``clu.periodic_actions`` import TensorFlow (spec
stack §2f), so this module replaces the parts the trainer needs:

* :class:`MetricWriter` appends scalars to ``workdir/metrics.jsonl`` (one JSON
  object per line, flushed on every write) and mirrors scalars / images to
  TensorBoard event files under ``workdir/tensorboard/`` through
  ``tensorboardX`` when it is importable; images also go to
  ``workdir/images/<name>_<step>.png`` and hyper-parameters to
  ``workdir/config.json``.
* :func:`image_grid` tiles e.g. ``[lq, out, gt]`` rows into one uint8 image.
* :class:`ProgressReporter` prints a periodic ``steps/s`` / ETA line.
* :func:`read_jsonl` reads ``metrics.jsonl`` back.

Non-finite scalars are written to the JSONL file as the strings ``"nan"``,
``"inf"`` and ``"-inf"`` (plain JSON has no such numbers, and ``null`` would
lose which one it was, e.g. an ``inf`` PSNR); :func:`read_jsonl` turns them
back into floats.

In multi-process runs, create the writer on process 0 only.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
from absl import logging
from PIL import Image

from restorect_jax.evaluation import metrics as metrics_lib

JSONL_NAME = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'
IMAGES_DIR = 'images'
CONFIG_NAME = 'config.json'

_NONFINITE_STR = {'nan': math.nan, 'inf': math.inf, '-inf': -math.inf}
_warned_no_tensorboardx = False


def _tensorboardx_summary_writer() -> type | None:
  """``tensorboardX.SummaryWriter``, or None (with a one-time warning)."""
  global _warned_no_tensorboardx
  try:
    from tensorboardX import SummaryWriter
  except ImportError as e:
    if not _warned_no_tensorboardx:
      logging.warning('tensorboardX is not importable (%s); metrics go to '
                      'metrics.jsonl only. `pip install tensorboardX` for '
                      'TensorBoard event files.', e)
      _warned_no_tensorboardx = True
    return None
  return SummaryWriter


def _to_float(name: str, value: Any) -> float:
  """A Python float from a Python / NumPy / JAX scalar (or size-1 array)."""
  arr = np.asarray(value)
  if arr.size != 1:
    raise ValueError(f'Scalar {name!r} has shape {arr.shape}, expected one '
                     'value.')
  return float(arr.reshape(()))


def _json_float(x: float) -> float | str:
  """``x`` itself, or ``'nan'`` / ``'inf'`` / ``'-inf'``."""
  if math.isfinite(x):
    return x
  if math.isnan(x):
    return 'nan'
  return 'inf' if x > 0 else '-inf'


def _as_hwc_uint8(name: str, img: np.ndarray) -> np.ndarray:
  """HWC uint8 with 3 or 4 channels from HW / HWC float [0, 1] or uint8."""
  x = np.asarray(img)
  if x.ndim == 2:
    x = x[..., None]
  if x.ndim != 3 or x.shape[-1] not in (1, 3, 4):
    raise ValueError(f'Image {name!r} must be (H, W) or (H, W, 1|3|4), got '
                     f'{x.shape}.')
  x = metrics_lib.to_uint8(x, 'round')
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return x


def _safe_filename(name: str) -> str:
  """``name`` with anything but ``[A-Za-z0-9._-]`` replaced by ``_``."""
  return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'image'


class MetricWriter:
  """Writes scalars, images and hyper-parameters under ``workdir``.

  Files:
    * ``metrics.jsonl``: one ``{"step": step, name: value, ...}`` line per
      :meth:`write_scalars` call, appended (a resumed run continues the file)
      and flushed immediately.
    * ``tensorboard/events.out.tfevents.*``: scalars, images and the
      hyper-parameters as text, when ``tensorboard`` and tensorboardX is
      importable.
    * ``images/<name>_<step>.png``: every :meth:`write_images` image.
    * ``config.json``: the last :meth:`write_hparams` dict.

  Usable as a context manager, which closes the writer on exit.
  """

  def __init__(self, workdir: str | os.PathLike[str], *,
               tensorboard: bool = True) -> None:
    """Creates ``workdir`` and opens the JSONL file (and the event writer).

    Args:
      workdir: Output folder; created if missing.
      tensorboard: Also write TensorBoard event files (needs tensorboardX;
        without it a warning is logged once and only the files are written).
    """
    self.workdir = os.fspath(workdir)
    os.makedirs(self.workdir, exist_ok=True)
    self.jsonl_path = os.path.join(self.workdir, JSONL_NAME)
    self._jsonl = open(self.jsonl_path, 'a', encoding='utf-8')
    if self._jsonl.tell() > 0:
      with open(self.jsonl_path, 'rb') as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b'\n':  # a killed run left half a line
          self._jsonl.write('\n')
    self._tb = None
    if tensorboard:
      writer_cls = _tensorboardx_summary_writer()
      if writer_cls is not None:
        self._tb = writer_cls(
            logdir=os.path.join(self.workdir, TENSORBOARD_DIR))
    self._closed = False

  def truncate_after(self, step: int) -> None:
    """Drops ``metrics.jsonl`` lines of steps after ``step``.

    A resumed run restarts from its last checkpoint; lines a killed run
    wrote past it would otherwise appear twice. (TensorBoard readers keep
    the newest value of a repeated step.)
    """
    self._check_open()
    self._jsonl.flush()
    with open(self.jsonl_path, encoding='utf-8') as f:
      lines = f.readlines()
    keep = []
    for line in lines:
      try:
        if json.loads(line)['step'] > step:
          continue
      except (ValueError, KeyError, TypeError):
        continue  # half a line from a kill
      keep.append(line if line.endswith('\n') else line + '\n')
    if len(keep) == len(lines):
      return
    self._jsonl.close()
    tmp = self.jsonl_path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      f.writelines(keep)
    os.replace(tmp, self.jsonl_path)
    self._jsonl = open(self.jsonl_path, 'a', encoding='utf-8')

  @property
  def has_tensorboard(self) -> bool:
    """Whether TensorBoard event files are being written."""
    return self._tb is not None

  def _check_open(self) -> None:
    if self._closed:
      raise RuntimeError('MetricWriter is closed.')

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Logs scalars for ``step`` to the JSONL file and TensorBoard.

    Args:
      step: Global step (converted to int).
      scalars: Name -> Python / NumPy / JAX scalar; converted to float.
        ``"step"`` is reserved.
    """
    self._check_open()
    step = int(step)
    if 'step' in scalars:
      raise ValueError("'step' is reserved in write_scalars.")
    values = {k: _to_float(k, v) for k, v in scalars.items()}
    record = {'step': step, **{k: _json_float(v) for k, v in values.items()}}
    self._jsonl.write(json.dumps(record, allow_nan=False) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(k, v, global_step=step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """Writes each image as a PNG and to TensorBoard.

    Args:
      step: Global step (part of the PNG name).
      images: Name -> ``(H, W)`` or ``(H, W, 1|3|4)`` image, float in [0, 1]
        (clipped, rounded) or uint8. Names may hold ``/`` (TensorBoard tags);
        in file names every character outside ``[A-Za-z0-9._-]`` becomes
        ``_``.
    """
    self._check_open()
    step = int(step)
    img_dir = os.path.join(self.workdir, IMAGES_DIR)
    os.makedirs(img_dir, exist_ok=True)
    for name, img in images.items():
      x = _as_hwc_uint8(name, img)
      path = os.path.join(img_dir, f'{_safe_filename(name)}_{step}.png')
      Image.fromarray(x).save(path)
      if self._tb is not None:
        self._tb.add_image(name, x, global_step=step, dataformats='HWC')

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Writes ``hparams`` to ``config.json`` (and as text to TensorBoard).

    Objects with a ``to_dict()`` method (e.g. ``ml_collections.ConfigDict``)
    are converted; values JSON cannot hold are written as their ``str()``.

    Args:
      hparams: Possibly nested mapping of hyper-parameters.
    """
    self._check_open()
    if hasattr(hparams, 'to_dict'):
      hparams = hparams.to_dict()
    text = json.dumps(hparams, indent=2, sort_keys=True, default=str)
    path = os.path.join(self.workdir, CONFIG_NAME)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text + '\n')
    os.replace(tmp, path)
    if self._tb is not None:
      # Indented by 4 so TensorBoard's markdown shows it as a code block.
      self._tb.add_text('hparams', '\n'.join(
          '    ' + line for line in text.splitlines()), global_step=0)

  def flush(self) -> None:
    """Flushes the JSONL file and the TensorBoard writer."""
    if self._closed:
      return
    self._jsonl.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes everything; later calls are no-ops."""
    if self._closed:
      return
    self.flush()
    self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
    self._closed = True

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, exc_type: type[BaseException] | None,
               exc: BaseException | None,
               tb: TracebackType | None) -> None:
    self.close()


class NullWriter:
  """The writer of processes other than 0: writes nothing."""

  def write_scalars(self, step, scalars) -> None:
    del step, scalars

  def write_images(self, step, images) -> None:
    del step, images

  def write_hparams(self, hparams) -> None:
    del hparams

  def truncate_after(self, step) -> None:
    del step

  def close(self) -> None:
    pass


def process_writer(workdir: str) -> MetricWriter | NullWriter:
  """Process 0 writes metrics, images and eval files; others do not."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    return MetricWriter(workdir)
  return NullWriter()


def image_grid(rows: Sequence[Sequence[np.ndarray]], *, sep: int = 2,
               fill: int = 255) -> np.ndarray:
  """Tiles images into one uint8 RGB grid, e.g. rows of ``[lq, out, gt]``.

  Every cell is as large as the largest image; smaller images sit in the
  top-left corner of their cell, and the rest of the cell, missing cells of
  short rows and the ``sep``-pixel separators between cells are ``fill``
  (white by default). There is no outer border.

  Args:
    rows: Rows of ``(H, W)`` / ``(H, W, 1|3)`` images, float in [0, 1]
      (clipped, rounded) or uint8.
    sep: Separator width in pixels.
    fill: uint8 value of the padding and separators.

  Returns:
    ``(R * Hmax + (R - 1) * sep, C * Wmax + (C - 1) * sep, 3)`` uint8, with R
    rows and C the longest row's length.
  """
  cells = [[_as_hwc_uint8(f'[{i}][{j}]', im) for j, im in enumerate(row)]
           for i, row in enumerate(rows)]
  flat = [c for row in cells for c in row]
  if not flat:
    raise ValueError('image_grid needs at least one image.')
  if any(c.shape[-1] != 3 for c in flat):
    raise ValueError('image_grid takes 1- or 3-channel images.')
  hmax = max(c.shape[0] for c in flat)
  wmax = max(c.shape[1] for c in flat)
  nrows, ncols = len(cells), max(len(row) for row in cells)
  grid = np.full((nrows * hmax + (nrows - 1) * sep,
                  ncols * wmax + (ncols - 1) * sep, 3), fill, np.uint8)
  for i, row in enumerate(cells):
    for j, c in enumerate(row):
      y, x = i * (hmax + sep), j * (wmax + sep)
      grid[y:y + c.shape[0], x:x + c.shape[1]] = c
  return grid


def _format_duration(secs: float) -> str:
  """``H:MM:SS`` (with days when long), ``?`` when unknown."""
  if not math.isfinite(secs) or secs < 0:
    return '?'
  return str(datetime.timedelta(seconds=round(secs)))


def _format_value(v: Any) -> str:
  try:
    f = _to_float('', v)
  except (TypeError, ValueError):
    return str(v)
  return f'{f:.4g}'


class ProgressReporter:
  """Periodic training progress line: step/total, steps/s, ETA and scalars.

  Call it after every step (or every few steps) with the number of finished
  steps; it reports when ``every_steps`` steps or ``every_secs`` seconds have
  passed since the last report (either trigger; ``None`` or 0 disables one)
  and at ``total_steps``. The rate is measured over the steps since the last
  report (since construction for the first one), so steps done before a
  resume (``start_step``) and compilation before construction do not count.

  Example line::

    step 200/1000 (20.0%) | 5.12 steps/s | ETA 0:02:36 | loss=0.0123 lr=0.0002
  """

  def __init__(self, total_steps: int, *, every_steps: int | None = 100,
               every_secs: float | None = 60.0, start_step: int = 0,
               print_fn: Callable[[str], Any] | None = print,
               clock: Callable[[], float] = time.monotonic) -> None:
    """Starts the clock.

    Args:
      total_steps: Last step of the run.
      every_steps: Report every this many steps (None / 0: never by count).
      every_secs: Report after this many seconds (None / 0: never by time).
      start_step: Step the run starts (or resumes) from.
      print_fn: Also print the line with this (None: absl logging only).
      clock: Seconds source (injectable for tests).
    """
    self.total_steps = int(total_steps)
    self.every_steps = every_steps or None
    self.every_secs = every_secs or None
    self.print_fn = print_fn
    self._clock = clock
    self._start_step = int(start_step)
    self._start_time = clock()
    self._last_step = self._start_step
    self._last_time = self._start_time

  def _due(self, step: int, now: float) -> bool:
    if step <= self._last_step:
      return False
    if step >= self.total_steps:
      return True
    if self.every_steps and step - self._last_step >= self.every_steps:
      return True
    return bool(self.every_secs and now - self._last_time >= self.every_secs)

  def __call__(self, step: int,
               scalars: Mapping[str, Any] | None = None) -> str | None:
    """Reports if due.

    Args:
      step: Number of finished steps.
      scalars: Extra values for the line (e.g. loss, lr).

    Returns:
      The progress line when it was reported, else None.
    """
    step = int(step)
    now = self._clock()
    if not self._due(step, now):
      return None
    dt = now - self._last_time
    rate = (step - self._last_step) / dt if dt > 0 else math.inf
    remaining = max(self.total_steps - step, 0)
    eta = remaining / rate if rate > 0 else math.inf
    if remaining == 0:
      eta = 0.0
    pct = 100.0 * step / self.total_steps if self.total_steps else 100.0
    parts = [f'step {step}/{self.total_steps} ({pct:.1f}%)',
             f'{rate:.3g} steps/s', f'ETA {_format_duration(eta)}']
    if remaining == 0:
      parts.append(
          f'elapsed {_format_duration(now - self._start_time)}')
    if scalars:
      parts.append(' '.join(f'{k}={_format_value(v)}'
                            for k, v in scalars.items()))
    line = ' | '.join(parts)
    self._last_step, self._last_time = step, now
    logging.info('%s', line)
    if self.print_fn is not None:
      self.print_fn(line)
    return line


def _decode_nonfinite(obj: dict[str, Any]) -> dict[str, Any]:
  return {k: _NONFINITE_STR.get(v, v) if isinstance(v, str) else v
          for k, v in obj.items()}


def read_jsonl(path: str | os.PathLike[str], *,
               decode_nonfinite: bool = True) -> list[dict[str, Any]]:
  """Reads a ``metrics.jsonl`` file back.

  Blank lines are skipped, and so are malformed lines (a run killed
  mid-write leaves half a line; the next writer starts a new line after it),
  with one warning. A resumed run appends, so steps between the last
  checkpoint and a crash can appear twice.

  Args:
    path: The file (or a workdir holding ``metrics.jsonl``).
    decode_nonfinite: Turn ``"nan"`` / ``"inf"`` / ``"-inf"`` strings back
      into floats.

  Returns:
    One dict per well-formed line, in file order.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    path = os.path.join(path, JSONL_NAME)
  records, bad = [], []
  with open(path, encoding='utf-8') as f:
    for i, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError:
        bad.append(i)
        continue
      if not isinstance(rec, dict):
        bad.append(i)
        continue
      records.append(_decode_nonfinite(rec) if decode_nonfinite else rec)
  if bad:
    logging.warning('%s: skipped %d malformed line(s): %s', path, len(bad),
                    bad[:10])
  return records
