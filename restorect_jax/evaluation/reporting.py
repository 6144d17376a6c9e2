"""Evaluation results on disk and on screen: CSV, summary JSON, table, plot.

The evaluate CLI produces one :class:`Row` per (image, protocol, RF step
count, noise seed) and writes them with :func:`write_csv`. Data-set-level
metrics (FID) go into one extra row per (protocol, steps, seed) whose image
name is :data:`DATASET_ROW`. :func:`summarize` turns the rows into
:class:`SummaryEntry` values, mean ± std over seeds, which
:func:`write_summary_json`, :func:`format_table` and
:func:`plot_steps_vs_quality` report.

Statistics (also printed under every table):

* per seed, the data-set value of a metric is the plain mean over images
  (or the data-set-level value, e.g. FID);
* ``mean`` is the mean of those per-seed values and ``std`` their *sample*
  standard deviation (``ddof=1``) over seeds, i.e. the spread caused by the
  sampler's noise, not by the images; it is 0 for a single seed;
* ``image_std`` is the population std over images within a seed, averaged
  over seeds: the "±" of the RestoRect result files (``spec/restorect.md``
  §6.1), kept so numbers can be compared with theirs.

Non-finite values (an ``inf`` PSNR of a perfect image, a NaN from an
undefined GT-mean ratio) propagate into the means, as ``np.mean`` does. The
CSV stores them as ``inf`` / ``nan``, the JSON as the strings ``"inf"``,
``"-inf"``, ``"nan"``. Every file is written atomically (temporary file in
the same folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from restorect_jax.core import hashing
from restorect_jax.evaluation import protocols as protocols_lib

DATASET_ROW = '<dataset>'
FIXED_COLUMNS = ('image', 'protocol', 'rf_steps', 'seed')
SUMMARY_FORMAT = 'restorect_jax.eval_summary/1'

_STATS_NOTE = ('mean ± std: std is the sample std (ddof=1) over seeds of the '
               'per-seed data-set means (0 for one seed); per image values '
               'are averaged within a seed')


@dataclasses.dataclass(frozen=True)
class Row:
  """Metrics of one image (or of the data set) under one setting.

  Attributes:
    image: Image name (relative path), or :data:`DATASET_ROW`.
    protocol: Protocol name.
    rf_steps: Sampler steps, or None for a model without a flow sampler.
    seed: Noise seed, or None for a deterministic model.
    metrics: ``{metric: value}``.
  """

  image: str
  protocol: str
  rf_steps: int | None
  seed: int | None
  metrics: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class SummaryEntry:
  """One metric of one (protocol, steps) setting, over seeds.

  Attributes:
    protocol: Protocol name.
    rf_steps: Sampler steps, or None.
    metric: Metric name.
    mean: Mean over seeds of the per-seed data-set values.
    std: Sample std (ddof=1) of the per-seed values; 0.0 for one seed.
    n_seeds: Number of seeds.
    n_images: Images per seed (0 for a data-set-level metric such as FID).
    image_std: Population std over images within a seed, averaged over
      seeds (NaN for a data-set-level metric).
    per_seed: ``{seed: data-set value}``.
  """

  protocol: str
  rf_steps: int | None
  metric: str
  mean: float
  std: float
  n_seeds: int
  n_images: int
  image_std: float
  per_seed: Mapping[int | None, float]


# ---------------------------------------------------------------------------
# Atomic writes.
# ---------------------------------------------------------------------------


def _atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = os.path.join(folder, f'.{os.path.basename(path)}.'
                     f'{uuid.uuid4().hex[:12]}.tmp')
  # 0o666 minus the umask, as open(path, 'w') gives (mkstemp gives 0o600).
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
  _atomic_write_bytes(path, text.encode('utf-8'))


# ---------------------------------------------------------------------------
# Per-image CSV.
# ---------------------------------------------------------------------------


def _fmt_float(x: float) -> str:
  x = float(x)
  if math.isnan(x):
    return 'nan'
  if math.isinf(x):
    return 'inf' if x > 0 else '-inf'
  return repr(x)


def _opt_int(s: str) -> int | None:
  return None if s == '' else int(s)


def metric_columns(rows: Iterable[Row]) -> list[str]:
  """Metric names over all rows, in first-seen order."""
  names: dict[str, None] = {}
  for row in rows:
    for k in row.metrics:
      names.setdefault(k, None)
  return list(names)


def write_csv(path: str | os.PathLike, rows: Sequence[Row]) -> None:
  """Writes per-image rows as CSV, atomically.

  Columns: ``image, protocol, rf_steps, seed`` and then every metric name
  (first-seen order). A metric a row lacks is an empty cell; None steps or
  seeds are empty cells; floats are written with ``repr`` (exact round trip).

  Args:
    path: Output file.
    rows: The rows.
  """
  rows = list(rows)
  names = metric_columns(rows)
  clash = set(names) & set(FIXED_COLUMNS)
  if clash:
    raise ValueError(f'Metric names clash with fixed columns: {clash}.')
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(list(FIXED_COLUMNS) + names)
  for r in rows:
    cells = [r.image, r.protocol,
             '' if r.rf_steps is None else str(int(r.rf_steps)),
             '' if r.seed is None else str(int(r.seed))]
    cells += [_fmt_float(r.metrics[k]) if k in r.metrics else ''
              for k in names]
    writer.writerow(cells)
  _atomic_write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[Row]:
  """Reads a file written by :func:`write_csv`."""
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.reader(f)
    header = next(reader)
    if tuple(header[:len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
      raise ValueError(f'{path}: not a per-image CSV (header {header}).')
    names = header[len(FIXED_COLUMNS):]
    rows = []
    for cells in reader:
      image, protocol, steps, seed = cells[:4]
      values = {k: float(v) for k, v in zip(names, cells[4:], strict=True)
                if v != ''}
      rows.append(Row(image, protocol, _opt_int(steps), _opt_int(seed),
                      values))
  return rows


# ---------------------------------------------------------------------------
# Summary.
# ---------------------------------------------------------------------------


def _steps_key(s: int | None) -> tuple[int, int]:
  return (0, 0) if s is None else (1, int(s))


def summarize(rows: Iterable[Row]) -> list[SummaryEntry]:
  """Mean ± std over seeds per (protocol, rf_steps, metric).

  See the module docstring for the statistics. Rows with the same (image,
  protocol, steps, seed) are merged (e.g. PSNR and LPIPS written
  separately); a metric given twice for the same key is an error, and so is
  a metric given both per image and in the :data:`DATASET_ROW` row.

  Args:
    rows: Per-image rows, plus optional data-set rows.

  Returns:
    Entries ordered by protocol (first-seen), steps (None first, then
    ascending) and metric (first-seen).

  Raises:
    ValueError: Duplicate values, or seeds that scored different image sets
      for the same metric (their means would not be comparable).
  """
  rows = list(rows)
  # (protocol, steps, metric) -> seed -> image -> value
  table: dict[tuple[str, int | None, str],
              dict[int | None, dict[str, float]]] = {}
  protocol_order: dict[str, None] = {}
  metric_order: dict[str, None] = {}
  for r in rows:
    protocol_order.setdefault(r.protocol, None)
    for name, value in r.metrics.items():
      metric_order.setdefault(name, None)
      per_seed = table.setdefault((r.protocol, r.rf_steps, name), {})
      per_image = per_seed.setdefault(r.seed, {})
      if r.image in per_image:
        raise ValueError(
            f'Duplicate {name!r} for image {r.image!r}, protocol '
            f'{r.protocol!r}, rf_steps {r.rf_steps}, seed {r.seed}.')
      per_image[r.image] = float(value)

  entries = []
  p_rank = {p: i for i, p in enumerate(protocol_order)}
  m_rank = {m: i for i, m in enumerate(metric_order)}
  for key in sorted(table, key=lambda k: (p_rank[k[0]], _steps_key(k[1]),
                                          m_rank[k[2]])):
    protocol, steps, name = key
    per_seed = table[key]
    image_sets = {seed: frozenset(v) for seed, v in per_seed.items()}
    first_seed = next(iter(image_sets))
    for seed, images in image_sets.items():
      if images != image_sets[first_seed]:
        diff = sorted(images ^ image_sets[first_seed])[:5]
        raise ValueError(
            f'{name!r} ({protocol}, rf_steps {steps}): seeds {first_seed} '
            f'and {seed} scored different images, e.g. {diff}.')
      if DATASET_ROW in images and len(images) > 1:
        raise ValueError(
            f'{name!r} ({protocol}, rf_steps {steps}, seed {seed}) is given '
            'both per image and for the data set.')
    images = image_sets[first_seed]
    dataset_level = DATASET_ROW in images
    seed_means: dict[int | None, float] = {}
    image_stds = []
    with np.errstate(invalid='ignore'):  # inf - inf in a std is NaN
      for seed in sorted(per_seed, key=_steps_key):
        vals = np.array(list(per_seed[seed].values()), np.float64)
        seed_means[seed] = float(np.mean(vals))
        if not dataset_level:
          image_stds.append(float(np.std(vals)))
      means = np.array(list(seed_means.values()), np.float64)
      std = float(np.std(means, ddof=1)) if len(means) > 1 else 0.0
    entries.append(SummaryEntry(
        protocol=protocol, rf_steps=steps, metric=name,
        mean=float(np.mean(means)), std=std, n_seeds=len(means),
        n_images=0 if dataset_level else len(images),
        image_std=(math.nan if dataset_level
                   else float(np.mean(image_stds))),
        per_seed=seed_means))
  return entries


# ---------------------------------------------------------------------------
# Manifest hash.
# ---------------------------------------------------------------------------


file_sha256 = hashing.file_sha256


def manifest(files: Iterable[str | os.PathLike],
             root: str | os.PathLike | None = None) -> list[tuple[str, str]]:
  """Sorted ``(relative name, file SHA-256)`` pairs.

  Args:
    files: Paths of the data set's files.
    root: Folder the names are relative to; default: the common folder of
      all files. Names use ``/`` separators.

  Returns:
    The pairs, sorted by name.

  Raises:
    ValueError: No files, a file outside ``root``, or a repeated name.
  """
  paths = [os.path.abspath(os.fspath(f)) for f in files]
  if not paths:
    raise ValueError('manifest of no files.')
  if root is None:
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
  root = os.path.abspath(os.fspath(root))
  out = {}
  for p in paths:
    rel = os.path.relpath(p, root)
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir:
      raise ValueError(f'{p} is not under {root}.')
    rel = rel.replace(os.sep, '/')
    if rel in out:
      raise ValueError(f'File {rel!r} listed twice.')
    out[rel] = file_sha256(p)
  return sorted(out.items())


def manifest_hash(files: Iterable[str | os.PathLike],
                  root: str | os.PathLike | None = None) -> str:
  """SHA-256 identifying a data set's exact files.

  The hash of the UTF-8 text made of one line ``<relative name>\\t<file
  SHA-256>\\n`` per file, sorted by name (:func:`manifest`). It changes when
  a file's bytes, a name, or the set of files changes, and not with the
  order ``files`` are given in or where the data set lives.

  Args:
    files: Paths of the data set's files.
    root: Folder the names are relative to (default: their common folder).

  Returns:
    The hex digest.
  """
  return hashing.text_sha256(''.join(f'{name}\t{digest}\n'
                                     for name, digest in manifest(files, root)))


# ---------------------------------------------------------------------------
# Summary JSON.
# ---------------------------------------------------------------------------


def _json_float(x: float) -> float | str:
  x = float(x)
  if math.isnan(x):
    return 'nan'
  if math.isinf(x):
    return 'inf' if x > 0 else '-inf'
  return x


def _from_json_float(x: float | str) -> float:
  return float(x)


def _seed_key(seed: int | None) -> str:
  return 'none' if seed is None else str(int(seed))


def _describe(protocols: Iterable[str | protocols_lib.Protocol]
              ) -> list[dict[str, str]]:
  out = []
  for p in protocols:
    if isinstance(p, str):
      p = protocols_lib.get(p)
    out.append({'name': p.name, 'description': p.description,
                'reference': p.reference})
  return out


def write_summary_json(
    path: str | os.PathLike, summary: Sequence[SummaryEntry], *,
    protocols: Iterable[str | protocols_lib.Protocol],
    manifest_sha256: str, checkpoint_sha256: str | None,
    rf_steps: Sequence[int | None] | None = None,
    seeds: Sequence[int | None] | None = None,
    dataset: str | None = None,
    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Writes the run summary as JSON, atomically.

  Args:
    path: Output file.
    summary: :func:`summarize` output.
    protocols: Protocol names (looked up in the registry) or objects; their
      names, descriptions and references are stored.
    manifest_sha256: :func:`manifest_hash` of the evaluated files.
    checkpoint_sha256: Hash of the checkpoint (precomputed), or None.
    rf_steps: Step counts evaluated (default: those in ``summary``).
    seeds: Seeds evaluated (default: those in ``summary``).
    dataset: Data set name.
    extra: More JSON-serialisable fields (e.g. the command line).

  Returns:
    The dictionary that was written.
  """
  if rf_steps is None:
    rf_steps = sorted({e.rf_steps for e in summary}, key=_steps_key)
  if seeds is None:
    seeds = sorted({s for e in summary for s in e.per_seed}, key=_steps_key)
  doc: dict[str, Any] = {
      'format': SUMMARY_FORMAT,
      'dataset': dataset,
      'manifest_sha256': manifest_sha256,
      'checkpoint_sha256': checkpoint_sha256,
      'protocols': _describe(protocols),
      'rf_steps': list(rf_steps),
      'seeds': list(seeds),
      'statistics': _STATS_NOTE,
      'results': [{
          'protocol': e.protocol,
          'rf_steps': e.rf_steps,
          'metric': e.metric,
          'mean': _json_float(e.mean),
          'std': _json_float(e.std),
          'n_seeds': e.n_seeds,
          'n_images': e.n_images,
          'image_std': _json_float(e.image_std),
          'per_seed': {_seed_key(s): _json_float(v)
                       for s, v in e.per_seed.items()},
      } for e in summary],
  }
  if extra:
    clash = set(extra) & set(doc)
    if clash:
      raise ValueError(f'extra fields clash with summary fields: {clash}.')
    doc.update(extra)
  _atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + '\n')
  return doc


def read_summary_json(path: str | os.PathLike) -> dict[str, Any]:
  """Reads :func:`write_summary_json` output; ``results`` become entries."""
  with open(path, encoding='utf-8') as f:
    doc = json.load(f)
  if doc.get('format') != SUMMARY_FORMAT:
    raise ValueError(f'{path}: not a {SUMMARY_FORMAT} file.')
  doc['results'] = [SummaryEntry(
      protocol=r['protocol'], rf_steps=r['rf_steps'], metric=r['metric'],
      mean=_from_json_float(r['mean']), std=_from_json_float(r['std']),
      n_seeds=int(r['n_seeds']), n_images=int(r['n_images']),
      image_std=_from_json_float(r['image_std']),
      per_seed={(None if k == 'none' else int(k)): _from_json_float(v)
                for k, v in r['per_seed'].items()})
                    for r in doc['results']]
  return doc


# ---------------------------------------------------------------------------
# Table.
# ---------------------------------------------------------------------------

_DECIMALS = (('psnr', 3), ('ssim', 4), ('lpips', 4), ('fid', 2), ('niqe', 3),
             ('brisque', 2), ('uciqe', 4), ('uiqm', 3))


def _decimals(metric: str) -> int:
  for prefix, d in _DECIMALS:
    if metric.startswith(prefix):
      return d
  return 4


def _cell(e: SummaryEntry) -> str:
  d = _decimals(e.metric)
  if e.n_seeds > 1:
    return f'{e.mean:.{d}f} ± {e.std:.{d}f}'
  return f'{e.mean:.{d}f}'


def format_table(summary: Sequence[SummaryEntry],
                 descriptions: Mapping[str, str] | None = None) -> str:
  """A fixed-width table, one line per (protocol, steps), and a legend.

  Cells are ``mean ± std`` (just ``mean`` for a single seed); ``-`` where a
  metric was not computed. Under the table: the statistics note, the seed
  and image counts, and one ``name: description`` line per protocol (from
  ``descriptions`` or the registry), so a number never appears without its
  protocol.

  Args:
    summary: :func:`summarize` output.
    descriptions: ``{protocol: description}`` for protocols that are not in
      the registry (or to override it).

  Returns:
    The table text (no trailing newline).
  """
  if not summary:
    return '(no results)'
  p_order: dict[str, None] = {}
  m_order: dict[str, None] = {}
  cells: dict[tuple[str, int | None], dict[str, str]] = {}
  for e in summary:
    p_order.setdefault(e.protocol, None)
    m_order.setdefault(e.metric, None)
    cells.setdefault((e.protocol, e.rf_steps), {})[e.metric] = _cell(e)
  metric_names = list(m_order)
  header = ['protocol', 'steps'] + metric_names
  body = []
  p_rank = {p: i for i, p in enumerate(p_order)}
  for key in sorted(cells, key=lambda k: (p_rank[k[0]], _steps_key(k[1]))):
    protocol, steps = key
    body.append([protocol, '-' if steps is None else str(steps)]
                + [cells[key].get(m, '-') for m in metric_names])
  widths = [max(len(r[i]) for r in [header] + body)
            for i in range(len(header))]

  def line(r):
    parts = [r[0].ljust(widths[0])]
    parts += [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
    return '  '.join(parts).rstrip()

  out = [line(header), '  '.join('-' * w for w in widths)]
  out += [line(r) for r in body]
  seeds = sorted({e.n_seeds for e in summary})
  n_images = sorted({e.n_images for e in summary if e.n_images})
  out.append('')
  out.append(f'{_STATS_NOTE}; seeds: {"/".join(map(str, seeds))}; images '
             f'per seed: {"/".join(map(str, n_images)) or "-"}')
  descriptions = dict(descriptions or {})
  for p in p_order:
    if p not in descriptions:
      try:
        descriptions[p] = protocols_lib.get(p).description
      except ValueError:
        descriptions[p] = '(protocol not in the registry; no description)'
    out.append(f'{p}: {descriptions[p]}')
  return '\n'.join(out)


# ---------------------------------------------------------------------------
# Steps-vs-quality plot (matplotlib, Agg).
# ---------------------------------------------------------------------------

# matplotlib's 'tab10' colours, 0..255: one per protocol, in summary order.
_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
            (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
            (188, 189, 34), (23, 190, 207))
_DPI = 100
_MIN_SIDE = 100  # Pixels; smaller plots cannot hold labels and legend.


def _plot_points(summary: Sequence[SummaryEntry], metric: str
                 ) -> dict[str, list[tuple[int, float, float]]]:
  """``{protocol: sorted [(steps, mean, std)]}`` of the plottable entries."""
  points: dict[str, list[tuple[int, float, float]]] = {}
  for e in summary:
    if e.metric != metric or e.rf_steps is None or not math.isfinite(e.mean):
      continue
    std = e.std if math.isfinite(e.std) else 0.0
    points.setdefault(e.protocol, []).append((int(e.rf_steps), e.mean, std))
  if not points:
    raise ValueError(f'No finite {metric!r} values with RF steps to plot.')
  return {p: sorted(pts) for p, pts in points.items()}


def steps_vs_quality_figure(summary: Sequence[SummaryEntry],
                            metric: str = 'psnr', *,
                            size: tuple[int, int] = (720, 480),
                            title: str | None = None) -> Any:
  """The matplotlib ``Figure`` that :func:`plot_steps_vs_quality` saves.

  Built without ``pyplot`` (no global state, no display) on an Agg canvas.

  Args:
    summary: :func:`summarize` output.
    metric: The metric to plot.
    size: ``(width, height)`` in pixels.
    title: Title (default: ``"<metric> vs RF steps"``).

  Returns:
    A ``matplotlib.figure.Figure`` with one axes.

  Raises:
    ValueError: Nothing to plot for ``metric``, or a side under 100 px.
  """
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top

  points = _plot_points(summary, metric)
  width, height = size
  if min(width, height) < _MIN_SIDE:
    raise ValueError(f'Plot size {size} is too small (each side >= '
                     f'{_MIN_SIDE} px).')
  steps = sorted({s for pts in points.values() for s, _, _ in pts})
  index = {s: i for i, s in enumerate(steps)}
  fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI,
               layout='constrained')
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for k, (protocol, pts) in enumerate(points.items()):
    color = tuple(c / 255.0 for c in _PALETTE[k % len(_PALETTE)])
    ax.errorbar([index[s] for s, _, _ in pts], [m for _, m, _ in pts],
                yerr=[sd for _, _, sd in pts], color=color, marker='o',
                linewidth=2, capsize=4, label=protocol)
  ax.set_xticks(range(len(steps)), [str(s) for s in steps])
  ax.set_xlim(-0.5, len(steps) - 0.5)
  ax.set_xlabel('RF steps (evenly spaced)')
  ax.set_ylabel(metric)
  ax.set_title(title if title is not None else f'{metric} vs RF steps')
  ax.grid(axis='y', color='0.88')
  ax.legend()
  return fig


def plot_steps_vs_quality(summary: Sequence[SummaryEntry],
                          path: str | os.PathLike, metric: str = 'psnr', *,
                          size: tuple[int, int] = (720, 480),
                          title: str | None = None) -> None:
  """PNG line plot of ``metric`` against RF steps, one line per protocol.

  Drawn with matplotlib (Agg, no display; :func:`steps_vs_quality_figure`).
  The step counts are placed at equal spacing in increasing order (1, 2, 4,
  10, 50 would squash on a linear axis) and labelled with their values;
  each point has a ± std error bar (std over seeds, as in
  :func:`summarize`). Entries without steps or with a non-finite mean are
  left out. Written atomically, ``size`` pixels exactly.

  Args:
    summary: :func:`summarize` output.
    path: Output ``.png`` file.
    metric: The metric to plot.
    size: ``(width, height)`` in pixels.
    title: Title (default: ``"<metric> vs RF steps"``).

  Raises:
    ValueError: Nothing to plot for ``metric``, or a side under 100 px.
  """
  fig = steps_vs_quality_figure(summary, metric, size=size, title=title)
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=_DPI)
  _atomic_write_bytes(path, buf.getvalue())
