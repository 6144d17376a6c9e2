"""What keeps the training loop from waiting on the host.

* :func:`device_prefetch`: the next batch is cut, sharded and put on the
  devices (asynchronously) before the step that needs it runs.
* :class:`PendingMetrics`: each step's metrics stay on the device until the
  log cadence (or a checkpoint) fetches them all at once; the non-finite
  check runs on what was fetched, before anything is saved.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax


class NonFiniteLossError(FloatingPointError):
  """A training loss was NaN or inf."""


def device_prefetch(batches: Iterator[Any], put: Callable[[Any], Any],
                    size: int = 2) -> Iterator[Any]:
  """Yields ``put(batch)`` with ``size`` batches already dispatched.

  ``put`` (e.g. a ``device_put`` / ``shard_batch``) returns at once, so the
  copies overlap with the running step.
  """
  queue = collections.deque()
  for batch in batches:
    queue.append(put(batch))
    if len(queue) > size - 1:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


class PendingMetrics:
  """Per-step metrics kept on the device until :meth:`fetch`."""

  def __init__(self):
    self._steps: list[tuple[int, str, dict[str, jax.Array]]] = []

  def add(self, step: int, phase: str, metrics: dict[str, jax.Array]
          ) -> None:
    """Records the metrics of global step ``step`` (1-based, done)."""
    self._steps.append((step, phase, metrics))

  def __len__(self) -> int:
    return len(self._steps)

  def fetch(self, last_good: str) -> list[tuple[int, dict[str, float]]]:
    """Fetches every pending step's metrics (one transfer) and checks them.

    Args:
      last_good: where the last good checkpoint is, for the error message.

    Returns:
      ``[(step, {name: float})]`` in step order.

    Raises:
      NonFiniteLossError: a loss was NaN / inf; names the first bad step,
        the range fetched, the terms and the last good checkpoint.
    """
    if not self._steps:
      return []
    values = jax.device_get([m for _, _, m in self._steps])
    out = []
    for (step, phase, _), m in zip(self._steps, values):
      m = {k: float(v) for k, v in m.items()}
      if not math.isfinite(m['loss']):
        first, last = self._steps[0][0], self._steps[-1][0]
        self._steps.clear()
        raise NonFiniteLossError(
            f'Non-finite loss {m["loss"]} at step {step} ({phase}; steps '
            f'{first}-{last} were checked together); terms: {m}. Stopping; '
            f'the last good checkpoint is {last_good}.')
      out.append((step, m))
    self._steps.clear()
    return out
