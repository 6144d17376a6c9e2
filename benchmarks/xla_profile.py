"""Per-op profiles: XLA:CPU thunk time by HLO op / Flax module, torch ops.

Used by ``profile_ops`` (whole benchmark rows) and ``parts_bench
--profile`` (single parts). JAX: the compiled program runs under
``jax.profiler.trace``; each XLA thunk event carries its HLO instruction
name, mapped here to the instruction's ``op_name`` metadata (the Flax
module path and the jax primitive; backward ops carry ``transpose(...)``).
torch: ``torch.profiler`` self CPU time per operator.
"""

from __future__ import annotations

import collections
import glob
import re
import shutil
import tempfile
from typing import Any

import jax

from benchmarks import common

# Wrappers jax puts around op names, and Flax method scopes, dropped when
# grouping (the primitive and the module path are what is left).
_WRAPPER = re.compile(r'^(jit|jvp|transpose|vmap|remat|checkpoint|pjit|'
                      r'rematted_computation)\((.*)\)$')
_METHOD_SCOPE = re.compile(r'^[A-Z]\w*\.[a-z_]')


def _hlo_op_names(hlo_text: str) -> dict[str, str]:
  """HLO instruction name → its ``op_name`` metadata (or the opcode)."""
  out = {}
  pat = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S+\s+([\w\-]+)\(')
  for line in hlo_text.splitlines():
    m = pat.match(line)
    if not m:
      continue
    meta = re.search(r'op_name="([^"]*)"', line)
    out[m.group(1)] = meta.group(1) if meta else m.group(2)
  return out


def split_op_name(op_name: str) -> tuple[bool, list[str], str]:
  """``(is_backward, module path, primitive)`` of an ``op_name``.

  The first component (the jitted function) and Flax method scopes such as
  ``G._level`` or ``Student.conditions`` are dropped; wrappers such as
  ``transpose(jvp(Student))`` are unwrapped (and mark the backward pass).
  """
  parts = op_name.split('/')
  backward = 'transpose(' in op_name
  path = []
  for p in parts[1:-1]:
    while (m := _WRAPPER.match(p)):
      p = m.group(2)
    if p and not _METHOD_SCOPE.match(p):
      path.append(p)
  return backward, path, parts[-1]


def profile_jax(w: common.Workload, calls: int) -> dict[str, float]:
  """Seconds per call spent in each HLO instruction of the program."""
  from jax._src.lib import _profile_data  # pylint: disable=g-import-not-at-top
  compiled, _ = common.compile_jax(w.jax_fn, *w.jax_args)
  args = list(w.jax_args)

  def call():
    out = compiled(*args)
    jax.block_until_ready(out)
    if w.carry:
      args[0] = out[0]

  call()
  logdir = tempfile.mkdtemp()
  try:
    with jax.profiler.trace(logdir):
      for _ in range(calls):
        call()
    (path,) = glob.glob(f'{logdir}/**/*.xplane.pb', recursive=True)
    prof = _profile_data.ProfileData.from_file(path)
  finally:
    shutil.rmtree(logdir, ignore_errors=True)
  names = _hlo_op_names(compiled.as_text())
  per_op = collections.Counter()
  for plane in prof.planes:
    for line in plane.lines:
      for ev in line.events:
        stats = dict(ev.stats)
        if 'hlo_op' in stats:
          per_op[names.get(stats['hlo_op'], stats['hlo_op'])] += (
              ev.duration_ns * 1e-9 / calls)
  return dict(per_op)


def group_jax(per_op: dict[str, float], depth: int
              ) -> tuple[collections.Counter, collections.Counter]:
  """Time by (direction, module path prefix) and by (direction, primitive)."""
  by_path, by_prim = collections.Counter(), collections.Counter()
  for op_name, t in per_op.items():
    backward, path, prim = split_op_name(op_name)
    d = 'bwd' if backward else 'fwd'
    by_path[(d, '/'.join(path[:depth]) or '(top)')] += t
    by_prim[(d, prim)] += t
  return by_path, by_prim


def profile_torch(w: common.Workload, calls: int, device: str
                  ) -> collections.Counter:
  """Self time per torch operator (convolutions by kernel and groups)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import profiler  # pylint: disable=g-import-not-at-top
  fn = w.make_torch_fn()
  fn()
  acts = [profiler.ProfilerActivity.CPU]
  if device.startswith('cuda'):
    acts.append(profiler.ProfilerActivity.CUDA)
  with profiler.profile(activities=acts, record_shapes=True) as prof:
    for _ in range(calls):
      fn()
    if device.startswith('cuda'):
      torch.cuda.synchronize()
  out = collections.Counter()
  for ev in prof.key_averages(group_by_input_shape=True):
    name = ev.key
    if 'convolution' in name and ev.input_shapes and len(
        ev.input_shapes) > 1 and len(ev.input_shapes[1]) == 4:
      o, i, kh, kw = ev.input_shapes[1]
      name += f' [{kh}x{kw}{" depthwise" if i == 1 and o > 1 else ""}]'
    out[name] += ev.self_cpu_time_total * 1e-6 / calls
  return out


def table(title: str, items: list[tuple[Any, float]], total: float) -> str:
  lines = [f'\n{title}', '| what | ms/call | share |', '|---|---|---|']
  for k, t in items:
    k = ' '.join(k) if isinstance(k, tuple) else k
    lines.append(f'| {k} | {1e3 * t:.1f} | {t / total:.0%} |')
  return '\n'.join(lines)




def report(w: common.Workload, *, frameworks: set[str], device: str | None,
           calls: int, top: int, depth: int) -> str:
  """Markdown tables of where each framework spends a workload's time."""
  out = [f'\n## {w.name} ({w.shape})']
  if 'jax' in frameworks:
    per_op = profile_jax(w, calls)
    total = sum(per_op.values())
    by_path, by_prim = group_jax(per_op, depth)
    out += [f'\nJAX: {1e3 * total:.0f} ms/call in XLA thunks',
            table('JAX by module path', by_path.most_common(top), total),
            table('JAX by primitive', by_prim.most_common(top), total),
            table('JAX top HLO instructions (op_name)',
                  collections.Counter(per_op).most_common(top), total)]
  if 'torch' in frameworks:
    per_t = profile_torch(w, calls, device)
    total = sum(per_t.values())
    out += [f'\ntorch: {1e3 * total:.0f} ms/call (self CPU time)',
            table('torch by operator', per_t.most_common(top), total)]
  return '\n'.join(out)
