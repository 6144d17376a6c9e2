"""Timing, FLOP and machine-report helpers shared by the benchmark scripts.

The scripts compare one JAX function with its PyTorch twin on the same
machine, in one process, back to back: same weights, same inputs, same
thread count. JAX is timed as a compiled executable (``jit(...).lower(...)
.compile()``) after warm-up calls, each call ended by ``block_until_ready``;
PyTorch under ``torch.inference_mode`` for inference (plain autograd for a
train step), each call ended by ``torch.cuda.synchronize`` on a GPU. Both
report the median of ``repeats`` calls. FLOPs come from XLA's cost analysis
of the compiled JAX program and are used for both frameworks' GFLOP/s.

Thread pinning must happen before JAX creates its CPU client (the first
computation), so the scripts call :func:`pin_cpu_threads` first in ``main``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# Markdown table columns printed by every benchmark script, in order.
TABLE_COLUMNS = ('row', 'shape', 'GFLOP (XLA)', 'JAX ms', 'torch ms',
                 'torch/JAX', 'JAX GFLOP/s', 'torch GFLOP/s', 'max|Δ|',
                 'JAX compile s')


@dataclasses.dataclass
class Timing:
  """Per-call wall times of one function (seconds)."""
  times: list[float]
  compile_s: float | None = None

  @property
  def median(self) -> float:
    return statistics.median(self.times)

  @property
  def spread(self) -> float:
    """(max - min) / median: how noisy the repeats were."""
    return (max(self.times) - min(self.times)) / self.median


@dataclasses.dataclass
class Row:
  """One benchmark row: a workload timed in both frameworks."""
  name: str
  shape: str
  flops: float | None = None
  jax: Timing | None = None
  torch: Timing | None = None
  max_abs_diff: float | None = None
  notes: str = ''

  @property
  def ratio(self) -> float | None:
    """torch time / JAX time: > 1 means JAX is faster."""
    if self.jax is None or self.torch is None:
      return None
    return self.torch.median / self.jax.median

  def to_json(self) -> dict[str, Any]:
    def timing(t):
      return None if t is None else {
          'median_s': t.median, 'times_s': t.times, 'compile_s': t.compile_s}
    return {'row': self.name, 'shape': self.shape, 'flops': self.flops,
            'jax': timing(self.jax), 'torch': timing(self.torch),
            'torch_over_jax': self.ratio, 'max_abs_diff': self.max_abs_diff,
            'notes': self.notes}


# ----------------------------------------------------------------------------
# Threads and machine.
# ----------------------------------------------------------------------------


def pin_cpu_threads(threads: int) -> int:
  """Restricts this process to ``threads`` CPUs (0: all it may use now).

  XLA:CPU sizes its thread pool from the CPUs the process may run on when
  its client is created, so this must run before the first JAX computation.
  PyTorch gets the same count through ``torch.set_num_threads`` (done by
  :func:`torch_setup`).

  Returns:
    The number of CPUs now allowed.
  """
  allowed = sorted(os.sched_getaffinity(0))
  if threads < 0:
    raise ValueError(f'--threads must be >= 0, got {threads}.')
  if threads:
    if threads > len(allowed):
      raise ValueError(f'--threads={threads} but only {len(allowed)} CPUs '
                       f'are available to this process: {allowed}.')
    os.sched_setaffinity(0, allowed[:threads])
  n = len(os.sched_getaffinity(0))
  for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(var, str(n))
  return n


def cpu_model() -> str:
  """The CPU model name from /proc/cpuinfo (platform string elsewhere)."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def cpu_flags_of_interest() -> str:
  """AVX-512 / AMX / bf16 capabilities (what XLA and oneDNN can use)."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('flags'):
          flags = line.split(':', 1)[1].split()
          keep = [f for f in flags if f.startswith(('avx512f', 'avx512_bf16',
                                                    'amx', 'avx2'))]
          return ' '.join(sorted(keep))
  except OSError:
    pass
  return ''


def machine_info(threads: int, torch_device: str | None) -> dict[str, Any]:
  """What the timings depend on: hardware, versions, threads and flags."""
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  dev = jax.devices()[0]
  info = {
      'cpu': cpu_model(),
      'cpu_flags': cpu_flags_of_interest(),
      'cpus_online': os.cpu_count(),
      'threads': threads,
      'python': sys.version.split()[0],
      'jax': jax.__version__,
      'jaxlib': jaxlib.__version__,
      'jax_backend': jax.default_backend(),
      'jax_device': f'{dev.platform}:{getattr(dev, "device_kind", "?")}',
      'XLA_FLAGS': os.environ.get('XLA_FLAGS', ''),
      'load_avg_1m': os.getloadavg()[0],
  }
  if torch_device is not None:
    import torch  # pylint: disable=g-import-not-at-top
    info['torch'] = torch.__version__
    info['torch_threads'] = torch.get_num_threads()
    info['torch_device'] = torch_device
    if torch_device.startswith('cuda'):
      info['torch_device_name'] = torch.cuda.get_device_name(0)
  return info


def format_machine(info: dict[str, Any]) -> str:
  return '\n'.join(f'- {k}: {v}' for k, v in info.items())


# ----------------------------------------------------------------------------
# JAX.
# ----------------------------------------------------------------------------


def run_child(module: str, args: Sequence[str], what: str, *,
              env: dict[str, str] | None = None) -> dict[str, Any]:
  """Runs ``python -m benchmarks.<module> <args>`` in a fresh process.

  The child prints one JSON object as its last stdout line; that object is
  returned. A failing child ends this process with ``what`` and the end of
  the child's stderr.
  """
  import subprocess  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, '-m', f'benchmarks.{module}', *args],
      capture_output=True, text=True, check=False, cwd=repo,
      env=None if env is None else dict(os.environ, **env))
  if proc.returncode:
    sys.exit(f'{what}: the child process failed (exit {proc.returncode}):\n'
             f'{proc.stderr[-3000:]}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def xla_flops(compiled: Any) -> float | None:
  """FLOPs of a compiled JAX program from XLA's cost analysis (or None).

  ``cost_analysis()`` returns a dict (a list of one dict in older JAX).
  """
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost:
    return None
  flops = cost.get('flops')
  return float(flops) if flops is not None and flops >= 0 else None


def compile_jax(fn: Callable, *args) -> tuple[Any, float]:
  """``jax.jit(fn).lower(*args).compile()`` and its wall time."""
  import jax  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  jitted = fn if hasattr(fn, 'lower') else jax.jit(fn)
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def time_jax(compiled: Callable, args: Sequence[Any], *, warmup: int,
             repeats: int, carry: bool = False) -> tuple[Timing, Any]:
  """Times a compiled JAX executable.

  Args:
    compiled: from :func:`compile_jax`.
    args: its arguments.
    warmup: untimed calls first (at least one: the first call also
      transfers constants and allocates).
    repeats: timed calls.
    carry: the first output replaces the first argument on every call (a
      train step's state), as a training loop does.

  Returns:
    The timing and the first call's output.
  """
  import jax  # pylint: disable=g-import-not-at-top
  args = list(args)
  outs = []

  def call():
    out = compiled(*args)
    jax.block_until_ready(out)
    if carry:
      args[0] = out[0]
    if not outs:
      outs.append(out)

  for _ in range(max(warmup, 1)):
    call()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
  return Timing(times), outs[0]


# ----------------------------------------------------------------------------
# PyTorch.
# ----------------------------------------------------------------------------


def torch_setup(threads: int, device: str) -> str:
  """Threads and the device string (``auto``: CUDA when available).

  Call before the first JAX computation (see the GPU memory note inside).
  """
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  if device == 'auto':
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
  if device.startswith('cuda'):
    if not torch.cuda.is_available():
      raise ValueError('--device=cuda but torch sees no CUDA device.')
    torch.backends.cudnn.benchmark = True
    # Both frameworks share the GPU: JAX must not grab 75 % of its memory
    # up front (read when JAX creates its GPU client, after this).
    os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  return device


def time_torch(fn: Callable[[], Any], *, device: str, warmup: int,
               repeats: int) -> tuple[Timing, Any]:
  """Times ``fn()`` (which sets inference_mode / autocast itself).

  Returns:
    The timing and the first call's output.
  """
  import torch  # pylint: disable=g-import-not-at-top
  cuda = device.startswith('cuda')
  first = fn()
  for _ in range(max(warmup, 1) - 1):
    fn()
  if cuda:
    torch.cuda.synchronize()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    if cuda:
      torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
  return Timing(times), first


def set_gpu_precision(precision: str, torch_device: str | None) -> None:
  """Same float32 matmul/conv math on both sides of a GPU comparison.

  ``'tf32'``: TensorFloat-32 allowed for f32 matmuls and convolutions in
  both (JAX's GPU default); ``'highest'``: full f32 in both. No effect on
  CPU math.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if precision not in ('tf32', 'highest'):
    raise ValueError(f"--gpu_precision must be 'tf32' or 'highest', got "
                     f'{precision!r}.')
  jax.config.update('jax_default_matmul_precision',
                    'tensorfloat32' if precision == 'tf32' else 'highest')
  if torch_device is not None and torch_device.startswith('cuda'):
    import torch  # pylint: disable=g-import-not-at-top
    allow = precision == 'tf32'
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


def to_torch(x: Any, device: str, *, nchw: bool = True) -> Any:
  """A NHWC numpy/JAX image batch (or any array) as a torch tensor."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  a = np.array(x, np.float32)  # a writable copy
  if nchw and a.ndim == 4:
    a = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
  return torch.from_numpy(a).to(device)


def to_nhwc(t: Any) -> Any:
  """A torch NCHW tensor as a NHWC numpy array (other ranks unchanged)."""
  a = t.detach().float().cpu().numpy()
  return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


# ----------------------------------------------------------------------------
# Workloads.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Workload:
  """One benchmark row, ready to run in either framework.

  Attributes:
    name, shape: the row's label.
    jax_fn: a ``jax.jit``-ed function.
    jax_args: its arguments.
    make_torch_fn: builds (lazily, so JAX-only runs need no torch) a
      zero-argument callable running the torch twin once.
    jax_value, torch_value: map a call's output to the NHWC array (or
      scalar) compared between the frameworks.
    carry: ``jax_fn`` is a train step whose first output is the next
      state (first argument).
    notes: printed under the table.
    loop_flops: for a program whose sampler is a device loop (XLA's cost
      analysis counts a ``while`` body once): ``(jitted body, its
      arguments, extra trips)``; the body's FLOPs times the extra trips
      are added to the program's.
  """
  name: str
  shape: str
  jax_fn: Callable
  jax_args: tuple
  make_torch_fn: Callable[[], Callable[[], Any]]
  jax_value: Callable[[Any], Any]
  torch_value: Callable[[Any], Any]
  carry: bool = False
  notes: str = ''
  loop_flops: tuple[Callable, tuple, int] | None = None


def run_workload(w: Workload, *, frameworks: set[str], device: str | None,
                 warmup: int, repeats: int) -> Row:
  """Compiles and times a workload in the chosen frameworks.

  The compared values come from each side's first call: for a train step
  that is the loss at the shared initial parameters.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  row = Row(w.name, w.shape, notes=w.notes)
  first_jax = None
  if 'jax' in frameworks:
    compiled, compile_s = compile_jax(w.jax_fn, *w.jax_args)
    row.flops = xla_flops(compiled)
    if w.loop_flops is not None and row.flops is not None:
      body, body_args, trips = w.loop_flops
      body_flops = xla_flops(body.lower(*body_args).compile())
      row.flops = None if body_flops is None else (
          row.flops + trips * body_flops)
    row.jax, first_jax = time_jax(compiled, w.jax_args, warmup=warmup,
                                  repeats=repeats, carry=w.carry)
    row.jax.compile_s = compile_s
    first_jax = np.asarray(w.jax_value(first_jax), np.float32)
    del compiled
  if 'torch' in frameworks:
    fn = w.make_torch_fn()
    row.torch, first_torch = time_torch(fn, device=device, warmup=warmup,
                                        repeats=repeats)
    if first_jax is not None:
      diff = first_jax - np.asarray(w.torch_value(first_torch), np.float32)
      row.max_abs_diff = float(np.max(np.abs(diff)))
  return row


# ----------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------


def _fmt(x: float | None, spec: str) -> str:
  return '—' if x is None else format(x, spec)


def markdown_table(rows: Sequence[Row]) -> str:
  """The results as the README's markdown table (``TABLE_COLUMNS``)."""
  lines = ['| ' + ' | '.join(TABLE_COLUMNS) + ' |',
           '|' + '---|' * len(TABLE_COLUMNS)]
  def rate(gflop, t):
    return None if t is None or gflop is None else gflop / t.median

  for r in rows:
    gflop = None if r.flops is None else r.flops / 1e9
    cells = [
        r.name, r.shape, _fmt(gflop, '.1f'),
        _fmt(None if r.jax is None else 1e3 * r.jax.median, '.1f'),
        _fmt(None if r.torch is None else 1e3 * r.torch.median, '.1f'),
        _fmt(r.ratio, '.2f'), _fmt(rate(gflop, r.jax), '.1f'),
        _fmt(rate(gflop, r.torch), '.1f'), _fmt(r.max_abs_diff, '.1e'),
        _fmt(None if r.jax is None else r.jax.compile_s, '.1f'),
    ]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def report(rows: Sequence[Row], info: dict[str, Any], command: str,
           json_out: str | None) -> str:
  """Prints (and optionally writes as JSON) the machine, command and table."""
  text = '\n'.join([
      f'command: `{command}`', '', 'machine:', format_machine(info), '',
      markdown_table(rows), '',
      'torch/JAX = torch median / JAX median (> 1: JAX faster); GFLOP/s of '
      'both use the XLA cost-analysis FLOP count; max|Δ| = largest '
      'absolute output difference JAX vs torch on the timed inputs.'])
  notes = [f'- {r.name}: {r.notes}' for r in rows if r.notes]
  noisy = [f'{r.name} ({fw} spread {t.spread:.0%})' for r in rows
           for fw, t in (('JAX', r.jax), ('torch', r.torch))
           if t is not None and len(t.times) > 1 and t.spread > 0.25]
  if notes:
    text += '\n\nnotes:\n' + '\n'.join(notes)
  if noisy:
    text += ('\n\nnoisy repeats (max-min > 25% of the median; rerun on a '
             'quiet machine): ' + ', '.join(noisy))
  print(text)
  if json_out:
    with open(json_out, 'w', encoding='utf-8') as f:
      json.dump({'command': command, 'machine': info,
                 'rows': [r.to_json() for r in rows]}, f, indent=1)
  return text
