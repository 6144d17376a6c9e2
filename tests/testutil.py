"""Helpers for tests: the shared reference fixtures and NCHW↔NHWC."""

from __future__ import annotations

import json
import os
import pathlib
import struct
import zlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_dir() -> pathlib.Path:
  """``../shared`` beside the repo (or $RESTORECT_SHARED); fails if absent."""
  path = pathlib.Path(os.environ.get('RESTORECT_SHARED', REPO.parent / 'shared'))
  if not (path / 'parity' / 'index.json').is_file():
    raise AssertionError(
        f'The reference parity fixtures are missing: expected '
        f'{path}/parity/index.json (the shared/ folder beside the repository, '
        'or set RESTORECT_SHARED). Parity tests never skip.')
  return path


def parity_index() -> dict[str, dict]:
  with open(shared_dir() / 'parity' / 'index.json') as f:
    return {e['case']: e for e in json.load(f)}


class Fixture:
  """One recorded case: ``sd``, ``inputs`` (NHWC), ``outputs``, tolerances."""

  def __init__(self, case: str, family: str = 'restorect'):
    self.meta = parity_index()[case]
    path = shared_dir() / 'parity' / family / f'{case}.npz'
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
    self.sd = {k[3:]: v for k, v in data.items() if k.startswith('sd/')}
    self.raw = data

  def get(self, name: str) -> np.ndarray:
    """An ``in/``, ``noise/`` or ``out/`` array, images moved to NHWC."""
    return to_nhwc(self.raw[name])

  def tolerance(self, name: str) -> float:
    return self.meta['tolerance_out'][name]


def to_nhwc(a: np.ndarray) -> np.ndarray:
  return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def assert_close(testcase, got, want, tol: float, what: str) -> None:
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  testcase.assertEqual(got.shape, want.shape, what)
  err = float(np.max(np.abs(got - want))) if want.size else 0.0
  testcase.assertLessEqual(err, tol, f'{what}: max|Δ| = {err:.3g} > {tol:.3g}')


def write_png16(path: str, arr: np.ndarray) -> str:
  """Writes a 16-bit PNG (gray (H, W, 1) or RGB (H, W, 3)) by hand."""
  h, w, c = arr.shape
  color_type = {1: 0, 3: 2}[c]
  raw = b''.join(b'\x00' + arr[y].astype('>u2').tobytes() for y in range(h))

  def chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack('>I', len(data)) + tag + data + struct.pack('>I', crc)

  ihdr = struct.pack('>IIBBBBB', w, h, 16, color_type, 0, 0, 0)
  with open(path, 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr))
    f.write(chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
  return path


def method_setup(config, frozen=None, *, teacher_params=None, mesh=None,
                 state_sharding=None, donate=False):
  """What ``train.train_and_evaluate`` builds, for tests of the pieces.

  Args:
    config: a run config (``config.method`` picks the method).
    frozen: frozen nets; default: seeded random DecomNets for RestoRect
      (plus ``teacher_params`` as the S2 teacher), nothing for IR-Flow.
    teacher_params: the S2 teacher's params (default: a fresh teacher).
    mesh, state_sharding, donate: for the jitted steps
      (``core.train_step.jit_phases``).

  Returns:
    A namespace with ``method``, ``models`` (evaluation), ``train_models``,
    ``frozen``, ``params``, ``tx``, ``schedules``, ``phases`` (pure) and
    ``steps`` (jitted, by phase name).
  """
  import types  # pylint: disable=g-import-not-at-top
  from restorect_jax import methods  # pylint: disable=g-import-not-at-top
  from restorect_jax.core import train_step  # pylint: disable=g-import-not-at-top
  from restorect_jax.methods.restorect import method as rm  # pylint: disable=g-import-not-at-top
  method = methods.for_config(config)
  models = method.models(config)
  train_models = method.models(config, training=True)
  if frozen is None:
    frozen = {}
    if method.name == 'restorect':
      frozen = {'decom_low': rm.load_decom('', 1, 'low'),
                'decom_high': rm.load_decom('', 2, 'high')}
      if config.stage == 's2':
        if teacher_params is None:
          t_cfg = config.copy_and_resolve_references()
          t_cfg.stage = 's1'
          teacher_params = method.init(t_cfg, models, frozen)['model']
        frozen['teacher'] = teacher_params
  params = method.init(config, models, frozen)
  tx, schedules = method.optimizers(config, params)
  phases = method.phases(config, train_models, schedules)
  steps = train_step.jit_phases(phases, mesh=mesh,
                                state_sharding=state_sharding, donate=donate)
  return types.SimpleNamespace(
      method=method, models=models, train_models=train_models, frozen=frozen,
      params=params, tx=tx, schedules=schedules, phases=phases, steps=steps)


TESTS = pathlib.Path(__file__).resolve().parent


def run_cli(module: str, *args: str, env: dict | None = None,
            timeout: int = 600):
  """``python -m restorect_jax.<module> args`` from the repository root.

  ``PYTHONPATH`` holds the repository and ``tests/`` (so ``--imports=
  toy_method_test`` works); ``env`` adds variables. Never raises on a
  non-zero exit: returns the ``CompletedProcess``.
  """
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                          str(TESTS)]))
  full_env.update(env or {})
  return subprocess.run(
      [sys.executable, '-m', f'restorect_jax.{module}', *args],
      capture_output=True, text=True, env=full_env, cwd=REPO,
      timeout=timeout, check=False)


def damage(directory: str) -> str:
  """Flips 8 bytes in the middle of the largest file under ``directory``
  (its size unchanged); returns the file's path."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]
  path = max(files, key=os.path.getsize)
  size = os.path.getsize(path)
  with open(path, 'r+b') as f:
    f.seek(size // 2)
    chunk = f.read(8)
    f.seek(size // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))
  assert os.path.getsize(path) == size
  return path
