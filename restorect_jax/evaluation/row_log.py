"""Per-image result rows appended to a JSONL file as they are computed.

The evaluate CLI writes each image's rows here (flushed) before moving on,
so an interrupted or failing run keeps everything it finished; the CSV and
the summary are made from this file at the end.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

from restorect_jax.evaluation import reporting


def _enc(v: float) -> float | str:
  return v if math.isfinite(v) else str(v)


def _dec(v: float | str) -> float:
  return float(v)


class RowLog:
  """Appends :class:`reporting.Row` lists to ``path`` (one JSON per row).

  A file left by an earlier run is replaced (a new evaluation starts).
  """

  def __init__(self, path: str):
    self.path = path
    self._f = open(path, 'w', encoding='utf-8')  # pylint: disable=consider-using-with
    os.chmod(path, 0o644)

  def append(self, rows: Sequence[reporting.Row]) -> None:
    for r in rows:
      self._f.write(json.dumps({
          'image': r.image, 'protocol': r.protocol, 'rf_steps': r.rf_steps,
          'seed': r.seed,
          'metrics': {k: _enc(float(v)) for k, v in r.metrics.items()}},
                               allow_nan=False) + '\n')
    self._f.flush()
    os.fsync(self._f.fileno())

  def close(self) -> None:
    self._f.close()

  @staticmethod
  def read(path: str) -> list[reporting.Row]:
    """The rows of a log (a half-written last line is ignored)."""
    rows = []
    with open(path, encoding='utf-8') as f:
      for line in f:
        try:
          d = json.loads(line)
        except ValueError:
          continue
        rows.append(reporting.Row(
            d['image'], d['protocol'], d['rf_steps'], d['seed'],
            {k: _dec(v) for k, v in d['metrics'].items()}))
    return rows
