"""Device mesh, shardings and multi-process setup for ``jax.jit`` training.

Data parallel by default: a 1-D mesh ``('data',)`` over every device, the
train state replicated (``P()``), each batch split along its first axis. With
``config.mesh.fsdp = k > 1`` the mesh is ``('data', 'fsdp')`` of shape
``(n / k, k)``; the batch is split over both axes and large parameters (and
their EMA copies and Adam moments) are split over ``'fsdp'`` along their
largest divisible axis (FSDP / ZeRO-3 style); XLA inserts the all-gathers.

Batch sizes are global: ``config.input.batch_size`` and every progressive
``mini_batch_sizes`` entry count images per step over all devices, and each
must divide by the mesh's device count. Each process reads ``1 /
process_count`` of the batch and :func:`shard_batch` assembles the global
array (``jax.make_array_from_process_local_data``), so the same code runs on
one device, one host with several, or several hosts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import os
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

DATA, FSDP = 'data', 'fsdp'
# Leaves with fewer elements stay replicated under FSDP (biases, norms,
# small kernels: splitting them saves little and costs a collective each).
FSDP_MIN_SIZE = 2 ** 18

# Environment variables that announce a multi-process launch which
# ``jax.distributed.initialize()`` can read by itself.
_CLUSTER_ENV = ('JAX_COORDINATOR_ADDRESS', 'MEGASCALE_COORDINATOR_ADDRESS')


# ----------------------------------------------------------------------------
# Multi-process start-up.
# ----------------------------------------------------------------------------


def is_multiprocess_launch(environ: Mapping[str, str] | None = None) -> bool:
  """Whether the environment describes a run of several processes.

  True for an explicit coordinator (``JAX_COORDINATOR_ADDRESS``), a Slurm
  step with more than one task, an Open MPI job with more than one rank, or a
  multi-worker TPU VM slice (``TPU_WORKER_HOSTNAMES`` lists several hosts).

  Args:
    environ: the environment (default ``os.environ``).
  """
  env = os.environ if environ is None else environ
  if any(env.get(k) for k in _CLUSTER_ENV):
    return True
  for key in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
    if int(env.get(key, '1') or '1') > 1:
      return True
  return len([h for h in env.get('TPU_WORKER_HOSTNAMES', '').split(',')
              if h]) > 1


def initialize_distributed(force: bool | None = None) -> bool:
  """Calls ``jax.distributed.initialize()`` for multi-process runs.

  Must run before anything touches a device. JAX detects the coordinator,
  process count and id from Slurm, Open MPI, Cloud TPU and GKE, or from
  ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``.

  Args:
    force: True always initialises, False never; None (default)
      initialises when :func:`is_multiprocess_launch` says so.

  Returns:
    Whether ``jax.distributed.initialize()`` was called.
  """
  if force is None:
    force = is_multiprocess_launch()
  if not force:
    return False
  env = os.environ
  kw = {}
  if env.get('JAX_COORDINATOR_ADDRESS'):
    kw['coordinator_address'] = env['JAX_COORDINATOR_ADDRESS']
    if env.get('JAX_NUM_PROCESSES'):
      kw['num_processes'] = int(env['JAX_NUM_PROCESSES'])
    if env.get('JAX_PROCESS_ID'):
      kw['process_id'] = int(env['JAX_PROCESS_ID'])
  jax.distributed.initialize(**kw)
  return True


# ----------------------------------------------------------------------------
# Mesh and shardings.
# ----------------------------------------------------------------------------


def sync_processes(name: str) -> None:
  """A barrier across processes (nothing in a single-process run)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def make_mesh(num_devices: int | None = None, fsdp: int = 1) -> Mesh:
  """The training mesh: ``('data',)`` or ``('data', 'fsdp')``.

  Args:
    num_devices: devices to use; None or 0 means all of them. Fewer than all
      (the first ``num_devices`` of ``jax.devices()``) is allowed in a
      single-process run only.
    fsdp: size of the ``'fsdp'`` axis; 1 turns FSDP off.

  Returns:
    A mesh with ``Auto`` axes (XLA propagates shardings inside the step).

  Raises:
    ValueError: on a device count that is out of range or not divisible by
      ``fsdp``.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  if not 1 <= n <= len(devices):
    raise ValueError(f'config.mesh.num_devices={num_devices} but '
                     f'{len(devices)} devices are visible.')
  if n != len(devices) and jax.process_count() > 1:
    raise ValueError(
        f'config.mesh.num_devices={num_devices}: a multi-process run must '
        f'use all {len(devices)} devices (set it to 0).')
  if fsdp < 1 or n % fsdp:
    raise ValueError(f'config.mesh.fsdp={fsdp} must be >= 1 and divide the '
                     f'{n} devices of the mesh.')
  if fsdp == 1:
    shape, names = (n,), (DATA,)
  else:
    shape, names = (n // fsdp, fsdp), (DATA, FSDP)
  return jax.make_mesh(shape, names, axis_types=(AxisType.Auto,) * len(shape),
                       devices=devices[:n])


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def data_sharding(mesh: Mesh) -> NamedSharding:
  """First (batch) axis split over every mesh axis, the rest whole."""
  return NamedSharding(mesh, P(tuple(mesh.axis_names)))


def check_batch_divisible(global_batch: int, mesh: Mesh, *,
                          what: str = 'config.input.batch_size') -> None:
  """Raises if a global batch cannot be split evenly over the mesh.

  Args:
    global_batch: images per step over all devices.
    mesh: the training mesh.
    what: how to name the offending value in the error.

  Raises:
    ValueError: naming the batch, the device and process counts, and what
      to change.
  """
  n, procs = mesh.size, jax.process_count()
  if global_batch < 1 or global_batch % n or global_batch % procs:
    raise ValueError(
        f'{what} = {global_batch} is a global batch (all devices together) '
        f'and must be a positive multiple of the {n} devices of the mesh '
        f'({procs} process(es)). Change the batch size, or use fewer '
        'devices with --config.mesh.num_devices (single process).')


def check_progressive_batches(batch_size: int,
                              mini_batch_sizes: Sequence[int],
                              mesh: Mesh) -> None:
  """Validates the global batch and every progressive stage up front.

  A stage uses ``min(batch_size, mini_batch_sizes[i])`` images (the
  reference's ``progressive`` sub-sampling); each must divide by the
  mesh's device count, so a bad stage fails at start-up, not mid-run.

  Raises:
    ValueError: see :func:`check_batch_divisible`; names the stage.
  """
  check_batch_divisible(batch_size, mesh)
  for i, mini in enumerate(mini_batch_sizes):
    check_batch_divisible(
        min(int(mini), batch_size), mesh,
        what=(f'Progressive stage {i}: config.input.mini_batch_sizes[{i}] '
              f'(effective mini-batch min({mini}, batch_size {batch_size}))'))


def process_batch_size(global_batch: int) -> int:
  """This process's share of a (validated) global batch."""
  return global_batch // jax.process_count()


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Global arrays from this process's slice of the batch.

  Args:
    batch: ``{name: (b, ...) array}`` with ``b = global batch /
      process_count``, this process's rows.
    mesh: the training mesh.

  Returns:
    The same keys as global ``jax.Array`` s of leading size ``b *
    process_count``, split over the mesh by :func:`data_sharding`.
  """
  sharding = data_sharding(mesh)
  out = {}
  for key, value in batch.items():
    value = np.asarray(value)
    if value.ndim == 0 or value.shape[0] % len(mesh.local_devices):
      raise ValueError(
          f'Batch entry {key!r} of shape {value.shape} cannot be split over '
          f'the {len(mesh.local_devices)} local devices of this process.')
    out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out


def _fsdp_spec(shape: tuple[int, ...], fsdp: int, min_size: int) -> P:
  """``P`` splitting the largest axis that ``fsdp`` divides, else ``P()``."""
  if fsdp <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  axes = sorted(range(len(shape)), key=lambda a: (-shape[a], a))
  for a in axes:
    if shape[a] % fsdp == 0:
      spec = [None] * len(shape)
      spec[a] = FSDP
      return P(*spec)
  return P()


def param_shardings(tree: Any, mesh: Mesh, *,
                    fsdp_min_size: int = FSDP_MIN_SIZE) -> Any:
  """Shardings for a pytree of parameters (or a whole train state).

  Replicated on a data-parallel mesh. On a mesh with an ``'fsdp'`` axis,
  every array of at least ``fsdp_min_size`` elements is split over
  ``'fsdp'`` along its largest axis that the axis size divides; the rule
  depends only on shapes, so params, EMA params and Adam moments of a leaf
  get the same sharding.

  Args:
    tree: a pytree of arrays or ``jax.ShapeDtypeStruct`` s.
    mesh: the training mesh.
    fsdp_min_size: smallest leaf (in elements) that FSDP splits.

  Returns:
    A pytree of ``NamedSharding`` with the structure of ``tree``.
  """
  fsdp = dict(mesh.shape).get(FSDP, 1)
  return jax.tree.map(
      lambda x: NamedSharding(mesh, _fsdp_spec(tuple(np.shape(x)), fsdp,
                                               fsdp_min_size)), tree)


def place(tree: Any, shardings: Any) -> Any:
  """Puts a pytree on its shardings, in fresh buffers that may be donated.

  ``jax.device_put`` alone can reuse the source buffer for one shard (a
  replicated copy of a device-0 array keeps device 0's buffer, even with
  ``may_alias=False`` in jax 0.10); donating such a state would delete the
  source (e.g. the frozen teacher whose G the student starts from). The
  jitted identity after it writes new buffers.
  """
  tree = jax.device_put(tree, shardings)
  return jax.jit(lambda t: t, out_shardings=shardings)(tree)


def is_fully_replicated(tree: Any) -> bool:
  """Whether every array leaf of ``tree`` is fully replicated."""
  return all(x.sharding.is_fully_replicated for x in jax.tree.leaves(tree))


def local_copy(tree: Any) -> Any:
  """A single-device copy of a (possibly sharded) pytree.

  Evaluation runs whole images one at a time; on replicated parameters a
  jitted predict would run the same work on every device of the mesh. This
  returns each leaf on this process's first device of its mesh (gathering
  FSDP-split leaves first, a collective: call it on every process).
  """
  def one(x):
    if not isinstance(x, jax.Array):
      return x
    if not x.sharding.is_fully_replicated:
      repl = NamedSharding(x.sharding.mesh, P())
      x = jax.jit(lambda y: y, out_shardings=repl)(x)
    return x.addressable_data(0)
  return jax.tree.map(one, tree)


def describe(mesh: Mesh) -> str:
  """One log line: mesh shape, processes, local devices."""
  shape = dict(mesh.shape)
  return (f'mesh {shape} over {mesh.size} device(s); process '
          f'{jax.process_index()} / {jax.process_count()} with local '
          f'devices {[d.id for d in mesh.local_devices]}')


def log_mesh(mesh: Mesh) -> None:
  logging.info('%s', describe(mesh))
