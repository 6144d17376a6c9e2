r"""Where the time goes: RestoRect's parts, JAX vs the PyTorch twin.

Command (the tables in benchmarks/README.md)::

  .venv/bin/python -m benchmarks.parts_bench --mode=fwd
  .venv/bin/python -m benchmarks.parts_bench --mode=fwd_bwd --size=128

Each row is one part of the S1 teacher (same weights on both sides: the
twin is built from the Flax init), run alone on random inputs of the shape
it sees inside the model at ``--size``² input: the DecomNet, the two prior
encoders, one transformer block of every level, the 3×3 resampling convs,
the decomposition head and the output conv. ``--mode=fwd`` times the
forward; ``fwd_bwd`` the forward plus the gradients for the parameters and
the inputs (the cotangent is an argument, not a constant XLA could fold).
``count`` is how many times the teacher runs the part (×count columns: its
share of a teacher forward/backward).

The 1×1 / attention formulation inside the blocks is the project's
(``restorect_jax/models/layers.py``); ``--depthwise`` sets the model option
of the blocks' depthwise 3×3 (``layers.depthwise_conv3x3``: autodiff of
shifted slices, the same with a hand-written VJP, or a grouped
``lax.conv``), and ``--dense_conv`` swaps the dense k×k ``lax.conv`` of
``layers.Conv2d`` for an alternative (im2col matmul, or a sum of per-tap
matmuls) to measure them (recorded in benchmarks/README.md).
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import op_variants
from benchmarks import xla_profile
from restorect_jax.models import DecomNet
from restorect_jax.models import Model
from restorect_jax.models import VARIANTS
from restorect_jax.models import init_variables
from restorect_jax.models import layers
from restorect_jax.models import rgformer

# The resampling conv + pixel (un)shuffle of G.
_Resample = rgformer._Resample  # pylint: disable=protected-access

_MODE = flags.DEFINE_enum('mode', 'fwd', ['fwd', 'fwd_bwd'],
                          'Forward only, or forward + gradients.')
_VARIANT = flags.DEFINE_string('variant', 'default', 'RestoRect variant.')
_SIZE = flags.DEFINE_integer('size', 256, 'Input image side of the model.')
_PARTS = flags.DEFINE_list('parts', [], 'Only these parts (default: all).')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls (median).')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed calls before timing.')
_THREADS = flags.DEFINE_integer(
    'threads', 0, 'CPUs for both frameworks (0: all this process may use).')
_DEVICE = flags.DEFINE_enum('device', 'auto', ['auto', 'cpu', 'cuda'],
                            'torch device (auto: cuda if available).')
_FRAMEWORKS = flags.DEFINE_list('frameworks', ['jax', 'torch'],
                                'Which sides to time: jax, torch.')
_DENSE_CONV = flags.DEFINE_enum(
    'dense_conv', 'lax', list(op_variants.DENSE_CONVS),
    'How JAX computes dense k×k convolutions (benchmarks/op_variants.py).')
_DEPTHWISE = flags.DEFINE_enum(
    'depthwise', 'auto', list(layers.DEPTHWISE_FORMULATIONS),
    'The blocks\' depthwise 3×3 option (layers.depthwise_conv3x3): auto '
    '(the default: shifted_vjp on CPU, shifted on GPU/TPU), shifted, '
    'shifted_vjp or lax.')
_TORCH_CHANNELS_LAST = flags.DEFINE_bool(
    'torch_channels_last', False, 'Run the torch twin in channels_last.')
_SMOKE = flags.DEFINE_bool('smoke', False, 'Tiny variant at 32², 1 repeat.')
_JSON_OUT = flags.DEFINE_string('json_out', None,
                                'Also write the results as JSON here.')
_PROFILE = flags.DEFINE_integer(
    'profile', 0, 'After timing, print the top-N ops of each part per '
    'framework (benchmarks/xla_profile.py); 0: off.')


def _parts(v: dict[str, Any], size: int,
           depthwise: str = 'auto') -> list[dict[str, Any]]:
  """(name, Flax module, params path, twin path, input shapes, count)."""
  d, nb, hd = v['dim'], v['num_blocks'], v['heads']
  s1, s2, s4, s8 = size, size // 2, size // 4, size // 8

  def block(level, width, heads, side, count, retinex=True):
    return dict(
        name=f'block {level} (C{width} @ {side}²)',
        module=rgformer.TransformerBlock(width, heads, retinex=retinex,
                                         depthwise=depthwise),
        path=('G', f'{level}.0'), twin=('G', level, 0),
        inputs=[(1, side, side, width), 'z'], count=count)

  def conv(name, path, twin, cin, side, module, count=1):
    return dict(name=name, module=module, path=path, twin=twin,
                inputs=[(1, side, side, cin)], count=count)

  return [
      dict(name=f'DecomNet (32ch @ {s1}²)', module=DecomNet(),
           path=('decom',), twin=('decom',), inputs=[(1, s1, s1, 3)],
           count=2),
      dict(name=f'E_img PE (@ {s4}²)', module='E_img', path=('E_img',),
           twin=('E_img',), inputs=[(1, s1, s1, 3), (1, s1, s1, 3)],
           count=1),
      dict(name=f'E_rex RPE (@ {s4}²)', module='E_rex', path=('E_rex',),
           twin=('E_rex',), inputs=[(1, s1, s1, 4), (1, s1, s1, 4)],
           count=1),
      conv(f'patch_embed 3→{d} (@ {s1}²)', ('G', 'patch_embed.proj'),
           ('G', 'patch_embed', 'proj'), 3, s1, layers.Conv2d(d, 3)),
      block('encoder_level1', d, hd[0], s1, nb[0]),
      block('encoder_level2', 2 * d, hd[1], s2, nb[1]),
      block('encoder_level3', 4 * d, hd[2], s4, nb[2]),
      block('latent', 8 * d, hd[3], s8, nb[3]),
      block('decoder_level3', 4 * d, hd[2], s4, nb[2]),
      block('decoder_level2', 2 * d, hd[1], s2, nb[1]),
      block('decoder_level1', 2 * d, hd[0], s1, nb[0]),
      block('img_refinement', 2 * d, hd[0], s1, v['num_refinement_blocks'],
            retinex=False),
      conv(f'down1_2 {d}→{d // 2} (@ {s1}²)', ('G', 'down1_2'),
           ('G', 'down1_2'), d, s1, _Resample(d // 2, True)),
      conv(f'up4_3 {8 * d}→{16 * d} (@ {s8}²)', ('G', 'up4_3'),
           ('G', 'up4_3'), 8 * d, s8, _Resample(16 * d, False)),
      conv(f'up2_1 {2 * d}→{4 * d} (@ {s2}²)', ('G', 'up2_1'),
           ('G', 'up2_1'), 2 * d, s2, _Resample(4 * d, False)),
      conv(f'decom head {d}→{d}×3→4 (@ {s1}²)', ('G', 'decom'),
           ('G', 'decom'), d, s1, rgformer.DecomHead(d), count=2),
      conv(f'img_output {2 * d}→3 (@ {s1}²)', ('G', 'img_output'),
           ('G', 'img_output'), 2 * d, s1, layers.Conv2d(3, 3)),
  ]


def _get(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def _twin_get(module, path):
  for p in path:
    module = module[p] if isinstance(p, int) else getattr(module, p)
  return module


def part_workload(part: dict[str, Any], teacher, t_vars, decom_vars, *,
                  mode: str, torch_device: str | None, twin_teacher: Any,
                  channels_last: bool, seed: int) -> common.Workload:
  """A part's JAX function (forward or VJP) and its torch twin.

  Args:
    part: an entry of :func:`_parts`.
    teacher, t_vars: the Flax teacher and its variables.
    decom_vars: DecomNet variables.
    mode: ``fwd`` or ``fwd_bwd``.
    torch_device: torch device (None: JAX only).
    twin_teacher: the teacher's torch twin (None: JAX only).
    channels_last: run the twin part in channels_last.
    seed: seed of the inputs and the cotangent.
  """
  rs = np.random.RandomState(seed)
  inputs = [rs.standard_normal((1, 256)).astype(np.float32) if s == 'z'
            else rs.uniform(0, 1, s).astype(np.float32)
            for s in part['inputs']]
  if part['path'] == ('decom',):
    module, params = part['module'], decom_vars['params']
  elif isinstance(part['module'], str):  # a setup() child of the teacher
    bound = teacher.bind(t_vars)
    module, variables = getattr(bound, part['module']).unbind()
    params = variables['params']
  else:
    module, params = part['module'], _get(t_vars['params'], part['path'])

  def fwd(params, *xs):
    out = module.apply({'params': params}, *xs)
    # The DecomNet returns (R, L): compare and differentiate cat(R, L).
    return jnp.concatenate(out, axis=-1) if isinstance(out, tuple) else out

  out_shape = jax.eval_shape(fwd, params, *inputs)
  ct = rs.standard_normal(out_shape.shape).astype(np.float32)
  if mode == 'fwd':
    fn, args = jax.jit(fwd), (params, *map(jnp.asarray, inputs))
    jax_value = lambda out: out
  else:
    def fn(params, xs, ct):
      out, vjp = jax.vjp(fwd, params, *xs)
      return out, vjp(ct)
    fn = jax.jit(fn)
    args = (params, tuple(map(jnp.asarray, inputs)), jnp.asarray(ct))
    jax_value = lambda out: out[0]

  def make_torch_fn():
    import torch  # pylint: disable=g-import-not-at-top
    from restorect_jax import torch_twin  # pylint: disable=g-import-not-at-top
    if part['path'] == ('decom',):
      net = torch_twin.from_flax('decomnet', 'default', decom_vars)
    else:
      net = _twin_get(twin_teacher, part['twin'])
    net = net.to(torch_device)
    t_in = [common.to_torch(x, torch_device) for x in inputs]
    if channels_last:
      net = net.to(memory_format=torch.channels_last)
      t_in = [t.contiguous(memory_format=torch.channels_last)
              if t.ndim == 4 else t for t in t_in]
    t_ct = common.to_torch(ct, torch_device)
    params_t = [p for p in net.parameters()]

    def t_fwd():
      out = net(*t_in)
      return torch.cat(out, 1) if isinstance(out, tuple) else out

    if mode == 'fwd':
      def t_fn():
        with torch.inference_mode():
          return t_fwd()
    else:
      for t in t_in:
        t.requires_grad_(True)

      def t_fn():
        out = t_fwd()
        grads = torch.autograd.grad(out, params_t + t_in, t_ct,
                                    allow_unused=True)
        return out, grads
    return t_fn

  def torch_value(out):
    return common.to_nhwc(out[0] if mode == 'fwd_bwd' else out)

  return common.Workload(part['name'], f'count {part["count"]}', fn, args,
                         make_torch_fn, jax_value=jax_value,
                         torch_value=torch_value)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  frameworks = set(_FRAMEWORKS.value)
  if not frameworks or frameworks - {'jax', 'torch'}:
    raise app.UsageError('--frameworks takes jax and/or torch.')
  threads = common.pin_cpu_threads(_THREADS.value)
  variant, size = _VARIANT.value, _SIZE.value
  repeats, warmup = _REPEATS.value, _WARMUP.value
  if _SMOKE.value:
    variant, size, repeats, warmup = 'tiny', 32, 1, 1
  torch_device = None
  if 'torch' in frameworks:
    torch_device = common.torch_setup(threads, _DEVICE.value)
  teacher = Model('teacher', variant, depthwise=_DEPTHWISE.value)
  img = jnp.zeros((1, 32, 32, 3))
  rex = jnp.zeros((1, 32, 32, 4))
  t_vars = init_variables(teacher, 3, img, img, rex, rex)
  decom_vars = init_variables(DecomNet(), 1, img)
  twin_teacher = None
  if 'torch' in frameworks:
    from restorect_jax import torch_twin  # pylint: disable=g-import-not-at-top
    twin_teacher = torch_twin.from_flax('teacher', variant, t_vars)
  parts = _parts(VARIANTS[variant], size, _DEPTHWISE.value)
  if _PARTS.value:
    parts = [p for p in parts if any(k in p['name'] for k in _PARTS.value)]
  rows = []
  with op_variants.dense_conv(_DENSE_CONV.value):
    for part in parts:
      w = part_workload(part, teacher, t_vars, decom_vars,
                        mode=_MODE.value, torch_device=torch_device,
                        twin_teacher=twin_teacher,
                        channels_last=_TORCH_CHANNELS_LAST.value, seed=0)
      row = common.run_workload(w, frameworks=frameworks,
                                device=torch_device, warmup=warmup,
                                repeats=repeats)
      row.count = part['count']
      rows.append(row)
      print(common.markdown_table(rows[-1:]).splitlines()[-1], flush=True)
      if _PROFILE.value:
        print(xla_profile.report(w, frameworks=frameworks,
                                 device=torch_device, calls=2,
                                 top=_PROFILE.value, depth=8), flush=True)
  info = common.machine_info(threads, torch_device)
  info.update(variant=variant, size=size, mode=_MODE.value,
              dense_conv=_DENSE_CONV.value,
              depthwise=_DEPTHWISE.value,
              depthwise_resolved=layers.resolve_depthwise(_DEPTHWISE.value),
              repeats=repeats, warmup=warmup,
              torch_channels_last=_TORCH_CHANNELS_LAST.value)
  command = ' '.join(['python -m benchmarks.parts_bench'] +
                     [shlex.quote(a) for a in sys.argv[1:]])
  common.report(rows, info, command, _JSON_OUT.value)
  print('\n' + share_table(rows))


def share_table(rows) -> str:
  """Each part × its count, as a share of the parts' JAX / torch total."""
  tot_j = sum(r.jax.median * r.count for r in rows if r.jax) or None
  tot_t = sum(r.torch.median * r.count for r in rows if r.torch) or None
  lines = ['| part | count | JAX ms ×count | share | torch ms ×count | '
           'share | torch/JAX |', '|---|---|---|---|---|---|---|']
  for r in rows:
    j = r.jax.median * r.count if r.jax else None
    t = r.torch.median * r.count if r.torch else None
    lines.append('| ' + ' | '.join([
        r.name, str(r.count),
        '—' if j is None else f'{1e3 * j:.0f}',
        '—' if j is None or tot_j is None else f'{j / tot_j:.0%}',
        '—' if t is None else f'{1e3 * t:.0f}',
        '—' if t is None or tot_t is None else f'{t / tot_t:.0%}',
        '—' if r.ratio is None else f'{r.ratio:.2f}']) + ' |')
  if tot_j and tot_t:
    lines.append(f'| total | | {1e3 * tot_j:.0f} | | {1e3 * tot_t:.0f} | | '
                 f'{tot_t / tot_j:.2f} |')
  return '\n'.join(lines)


if __name__ == '__main__':
  app.run(main)
