r"""Peak memory and time of ``restore`` on large images (RestoRect student).

Commands::

  # the issue's figure: 6 MP and 24 MP with the default-width Interface
  # (random weights), each in a fresh process, automatic tiling as the
  # restore CLI does it (32-px overlap, its default 512 x 512 tiles: G's
  # default width needs 8.2 GiB of temporaries for 1024 x 1024 tiles)
  .venv/bin/python -m benchmarks.memory_bench
  # quick: the demo variant with 1 MP tiles (as measured below)
  .venv/bin/python -m benchmarks.memory_bench --variant=demo \
      --max_pixels=1048576
  # what windowed priors change: whole-image vs windowed priors on an image
  # that fits both ways (max|Δ| of the priors and of the restored image)
  .venv/bin/python -m benchmarks.memory_bench --compare=2048x1536 \
    --decom=../shared/weights/retidiff/init_low.npz

Each size runs ``restorect_jax.restore.restore_image`` (the restore CLI's
code path: ``Predictor.prepare`` with the priors window by window above
``prior_max_pixels``, then G on ``--tile`` tiles, automatic above
``--max_pixels``) on a synthetic float32 image in a fresh subprocess, which
reports its own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) and wall
time (compilation included). The table puts them beside the size of one
float32 image buffer (H x W x 3 x 4 bytes): the restore path holds a few
(input, its device copy and padded copy during ``prepare``, the blended
output, the clipped result), so between two sizes the peak should grow by
a few buffers' difference and nothing else. Weights are random (``Model(
'interface', --variant)``, ``DecomNet``; ``--decom`` loads real ``Dl``
weights): memory and time do not depend on them.

Measured (2 shared CPUs, load ~8): demo variant, 1 MP tiles: 6 MP 3.19 GiB
(267 s), 24 MP 3.63 GiB (1003 s): +449 MiB, 2.2 image buffers. Default
variant, 512 tiles: 6 MP 3.84 GiB (2493 s), 24 MP 4.47 GiB (6222 s, load
~3): +645 MiB, 3.1 image buffers. What sets the level is one
tile of G (XLA temporaries: default width 2.0 GiB at 512², 8.2 GiB at
1024²; demo 0.5 / 2.1 GiB) and one prior window (0.28 GiB at 1 MP, was
6.4 GiB for the whole-image priors of 24 MP).
"""

from __future__ import annotations

import json
import math
import os
import resource
import shlex
import sys
import time

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from restorect_jax import restore
from restorect_jax.inference import loading
from restorect_jax.methods.restorect import predictor as rpred
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import init_variables

# --variant, --decom (cli_common), --tile, --tile_overlap, --max_pixels: the
# restore CLI's flags, same meaning and defaults.
flags.adopt_module_key_flags(restore)
FLAGS = flags.FLAGS
_SIZES = flags.DEFINE_list(
    'sizes', ['3000x2000', '6000x4000'],
    'Image sizes WxH to restore, each in a fresh process (6 MP, 24 MP).')
_PRIOR_MAX_PIXELS = flags.DEFINE_integer(
    'prior_max_pixels', None, 'Window budget of the priors (default: the '
    'predictor\'s, 1024 x 1024; 0: whole image).')
_COMPARE = flags.DEFINE_string(
    'compare', '', 'WxH: instead of the memory table, compare windowed with '
    'whole-image priors on one synthetic image of this size.')
_CHILD = flags.DEFINE_string('child', '', 'Internal: run one size, print '
                             'JSON.')

_GIB = 2.0 ** 30
_MIB = 2.0 ** 20


def _parse_size(text: str) -> tuple[int, int]:
  """``'WxH'`` to (H, W)."""
  try:
    w, h = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise app.UsageError(f'Expected a size WxH, got {text!r}.') from None
  return h, w


def _peak_rss() -> int:
  """This process's peak resident set size in bytes (Linux: KiB units)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _buffer_bytes(h: int, w: int) -> int:
  """One float32 (H, W, 3) image buffer."""
  return h * w * 3 * 4


def _predictor(prior_max_pixels=None):
  """The student predictor with random (or ``--decom``) weights."""
  model = Model('interface', FLAGS.variant)
  lq = jnp.zeros((1, 16, 16, 3))
  rex = jnp.zeros((1, 16, 16, 4))
  noise = jnp.zeros((1, 256))
  interface = init_variables(model, 0, lq, rex, noise, noise, 1)
  if FLAGS.decom:
    load = loading._load_weights  # pylint: disable=protected-access
    decom, _ = load(FLAGS.decom, 'decomnet', 'default', {})
  else:
    decom = init_variables(DecomNet(), 1, lq)
  if prior_max_pixels is None:
    prior_max_pixels = _PRIOR_MAX_PIXELS.value
  kw = {}
  if prior_max_pixels is not None:
    kw['prior_max_pixels'] = prior_max_pixels or None
  return rpred.student_predictor(interface, decom, model=model,
                                 info={'source': 'random'}, **kw)


def _synthetic(h: int, w: int, seed: int = 0):
  """A dark, smooth float32 image with noise (a stand-in low-light photo)."""
  rng = np.random.default_rng(seed)
  coarse = rng.random((h // 64 + 2, w // 64 + 2, 3), dtype=np.float32)
  ys = np.linspace(0, coarse.shape[0] - 1.001, h, dtype=np.float32)
  xs = np.linspace(0, coarse.shape[1] - 1.001, w, dtype=np.float32)
  y0, x0 = ys.astype(np.int32), xs.astype(np.int32)
  fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  img = np.empty((h, w, 3), np.float32)
  for r in range(0, h, 256):  # row blocks: no full-size temporaries
    sl = slice(r, r + 256)
    a, b = coarse[y0[sl]], coarse[y0[sl] + 1]
    top = a[:, x0] * (1 - fx) + a[:, x0 + 1] * fx
    bot = b[:, x0] * (1 - fx) + b[:, x0 + 1] * fx
    img[sl] = 0.25 * (top * (1 - fy[sl]) + bot * fy[sl])
    img[sl] += rng.normal(0, 0.02, img[sl].shape).astype(np.float32)
  np.clip(img, 0.0, 1.0, out=img)
  return img


def _restore(predictor, image, progress=None):
  return restore.restore_image(
      predictor, image, name='bench.png', tile=FLAGS.tile,
      overlap=FLAGS.tile_overlap, max_pixels=FLAGS.max_pixels,
      progress=progress)


def _child(size: str) -> None:
  """One size in this (fresh) process; prints one JSON line."""
  h, w = _parse_size(size)
  predictor = _predictor()
  base = _peak_rss()  # runtime + weights + init compilation
  image = _synthetic(h, w)
  t0 = time.perf_counter()
  out = _restore(predictor, image)
  wall = time.perf_counter() - t0
  print(json.dumps(dict(size=size, h=h, w=w, base_rss=base,
                        peak_rss=_peak_rss(), wall_s=wall,
                        out_mean=float(out.mean()))))


def _run_child(size: str) -> dict:
  args = [f'--child={size}', f'--variant={FLAGS.variant}',
          f'--tile={FLAGS.tile}', f'--max_pixels={FLAGS.max_pixels}',
          f'--tile_overlap={FLAGS.tile_overlap}', f'--decom={FLAGS.decom}']
  if _PRIOR_MAX_PIXELS.value is not None:
    args.append(f'--prior_max_pixels={_PRIOR_MAX_PIXELS.value}')
  return common.run_child('memory_bench', args, size)


def _memory_table() -> None:
  print(f'command: {shlex.join(sys.argv)}')
  print(f'variant {FLAGS.variant}, tile {FLAGS.tile or "auto"}, '
        f'max_pixels {FLAGS.max_pixels}, overlap {FLAGS.tile_overlap}, '
        f'prior_max_pixels {_PRIOR_MAX_PIXELS.value or "predictor default"}'
        f', {os.cpu_count()} CPUs')
  rows = []
  for size in _SIZES.value:
    rows.append(_run_child(size))
    r = rows[-1]
    print(f'  {size}: peak {r["peak_rss"] / _GIB:.2f} GiB, '
          f'{r["wall_s"]:.1f} s', flush=True)
  print('\n| size | MP | wall s | peak RSS GiB | baseline GiB | '
        'image buffer MiB | peak - baseline (buffers) | '
        'Δpeak vs first (Δbuffers) |')
  print('|---|---|---|---|---|---|---|---|')
  first = rows[0]
  for r in rows:
    buf = _buffer_bytes(r['h'], r['w'])
    above = r['peak_rss'] - r['base_rss']
    d_peak = r['peak_rss'] - first['peak_rss']
    d_buf = buf - _buffer_bytes(first['h'], first['w'])
    ratio = f'{d_peak / d_buf:.2f}' if d_buf else '-'
    print(f'| {r["size"]} | {r["h"] * r["w"] / 1e6:.1f} | '
          f'{r["wall_s"]:.1f} | {r["peak_rss"] / _GIB:.2f} | '
          f'{r["base_rss"] / _GIB:.2f} | {buf / _MIB:.0f} | '
          f'{above / _MIB:.0f} MiB ({above / buf:.2f}) | '
          f'{d_peak / _MIB:+.0f} MiB ({ratio}) |')
  print('\nΔbuffers: the growth of the peak over the first size, in units of '
        'the growth of one float32 image buffer.')


def _compare(size: str) -> None:
  """Windowed vs whole-image priors on one image: priors and outputs."""
  h, w = _parse_size(size)
  print(f'command: {shlex.join(sys.argv)}')
  image = _synthetic(h, w)
  budget = _PRIOR_MAX_PIXELS.value or 1024 * 1024
  windowed = _predictor(budget)
  whole = _predictor(0)
  res = {}
  for tag, p in (('windowed', windowed), ('whole', whole)):
    t0 = time.perf_counter()
    z = p.prepare(image, name='bench.png')
    t1 = time.perf_counter()
    out = _restore(p, image)
    res[tag] = (tuple(np.asarray(v) for v in z), out, t1 - t0,
                time.perf_counter() - t1)
  (zw, ow, pw, gw), (za, oa, pa, ga) = res['windowed'], res['whole']
  dz = [float(np.abs(a - b).max()) for a, b in zip(zw, za)]
  mag = [float(np.abs(b).max()) for b in za]
  d = np.abs(ow.astype(np.float64) - oa)
  mse = float((d ** 2).mean())
  psnr = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
  print(f'{size} ({h * w / 1e6:.1f} MP), variant {FLAGS.variant}, '
        f'prior_max_pixels {budget}, decom {FLAGS.decom or "random"}')
  print(f'  prepare: windowed {pw:.1f} s, whole image {pa:.1f} s')
  print(f'  max|Δ| z_rex {dz[0]:.3g} (max|z| {mag[0]:.3g}), z_img '
        f'{dz[1]:.3g} (max|z| {mag[1]:.3g})')
  print(f'  restored image (restore_image, tiles as the CLI): max|Δ| '
        f'{d.max():.3g}, mean|Δ| {d.mean():.3g}, PSNR {psnr:.1f} dB')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _CHILD.value:
    _child(_CHILD.value)
  elif _COMPARE.value:
    _compare(_COMPARE.value)
  else:
    _memory_table()


if __name__ == '__main__':
  app.run(main)
