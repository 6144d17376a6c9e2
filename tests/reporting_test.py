"""Tests for restorect_jax.evaluation.reporting: CSV, JSON, manifest, plot."""

import hashlib
import json
import math
import os
import shutil
import tempfile

import numpy as np
from absl.testing import absltest
from PIL import Image

from restorect_jax.evaluation import protocols, reporting

Row = reporting.Row


def _rows():
  """Two seeds x two images at 5 steps, one seed at 1 step, plus FID."""
  return [
      Row('a.png', 'standard', 5, 0, {'psnr': 20.0, 'ssim': 0.5}),
      Row('b.png', 'standard', 5, 0, {'psnr': 22.0, 'ssim': 0.7}),
      Row('a.png', 'standard', 5, 1, {'psnr': 24.0, 'ssim': 0.6}),
      Row('b.png', 'standard', 5, 1, {'psnr': 22.0, 'ssim': 0.8}),
      Row(reporting.DATASET_ROW, 'standard', 5, 0, {'fid': 40.0}),
      Row(reporting.DATASET_ROW, 'standard', 5, 1, {'fid': 44.0}),
      Row('a.png', 'standard', 1, 0, {'psnr': 18.0, 'ssim': 0.4}),
      Row('b.png', 'standard', 1, 0, {'psnr': 19.0, 'ssim': 0.45}),
      Row('a.png', 'irflow', 1, 0, {'psnr': 17.0, 'psnr_y': 18.0}),
      Row('b.png', 'irflow', 1, 0, {'psnr': 17.5, 'psnr_y': 18.5}),
  ]


def _entry(summary, protocol, steps, metric):
  (e,) = [e for e in summary if (e.protocol, e.rf_steps, e.metric)
          == (protocol, steps, metric)]
  return e


def _tmpdir(test):
  """A fresh folder removed after the test."""
  d = tempfile.mkdtemp()
  test.addCleanup(shutil.rmtree, d, ignore_errors=True)
  return d


def _same(a, b):
  if isinstance(a, float) and isinstance(b, float):
    return a == b or (math.isnan(a) and math.isnan(b))
  return a == b


class CsvTest(absltest.TestCase):

  def test_round_trip(self):
    rows = [
        Row('x, with comma.png', 'restorect_files', None, None,
            {'psnr': math.inf, 'ssim': 1.0}),
        Row('sub/y.png', 'gt_mean_kind', 3, 7,
            {'psnr': math.nan, 'lpips_alex': 0.1234567890123}),
        Row('z.png', 'standard', 10, 0, {'psnr': -math.inf}),
    ]
    path = os.path.join(_tmpdir(self), 'out', 'img.csv')
    reporting.write_csv(path, rows)
    with open(path, encoding='utf-8') as f:
      header = f.readline().strip()
    self.assertEqual(header, 'image,protocol,rf_steps,seed,psnr,ssim,'
                     'lpips_alex')
    back = reporting.read_csv(path)
    self.assertLen(back, 3)
    for a, b in zip(rows, back, strict=True):
      self.assertEqual((a.image, a.protocol, a.rf_steps, a.seed),
                       (b.image, b.protocol, b.rf_steps, b.seed))
      self.assertEqual(set(a.metrics), set(b.metrics))
      for k in a.metrics:
        self.assertTrue(_same(a.metrics[k], b.metrics[k]), k)
    self.assertEqual(os.listdir(os.path.dirname(path)), ['img.csv'])

  def test_failed_write_keeps_old_file(self):
    folder = _tmpdir(self)
    path = os.path.join(folder, 'img.csv')
    reporting.write_csv(path, _rows())
    with open(path, encoding='utf-8') as f:
      before = f.read()
    with self.assertRaises(ValueError):
      reporting.write_csv(path, [Row('a', 'standard', 1, 0, {'seed': 1.0})])
    with open(path, encoding='utf-8') as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(os.listdir(folder), ['img.csv'])


class SummarizeTest(absltest.TestCase):

  def test_hand_values(self):
    s = reporting.summarize(_rows())
    e = _entry(s, 'standard', 5, 'psnr')
    # Seed means 21 and 23; sample std over seeds sqrt(2); image std 1.
    self.assertEqual(e.per_seed, {0: 21.0, 1: 23.0})
    self.assertAlmostEqual(e.mean, 22.0)
    self.assertAlmostEqual(e.std, math.sqrt(2.0))
    self.assertEqual((e.n_seeds, e.n_images), (2, 2))
    self.assertAlmostEqual(e.image_std, 1.0)
    e = _entry(s, 'standard', 5, 'ssim')
    self.assertAlmostEqual(e.mean, 0.65)
    self.assertAlmostEqual(e.std, math.sqrt(2 * 0.05 ** 2))
    fid = _entry(s, 'standard', 5, 'fid')
    self.assertAlmostEqual(fid.mean, 42.0)
    self.assertAlmostEqual(fid.std, math.sqrt(8.0))
    self.assertEqual(fid.n_images, 0)
    self.assertTrue(math.isnan(fid.image_std))
    one = _entry(s, 'standard', 1, 'psnr')
    self.assertEqual((one.mean, one.std, one.n_seeds), (18.5, 0.0, 1))
    # Order: protocols as first seen, steps ascending, metrics first seen.
    self.assertEqual([(e.protocol, e.rf_steps, e.metric) for e in s], [
        ('standard', 1, 'psnr'), ('standard', 1, 'ssim'),
        ('standard', 5, 'psnr'), ('standard', 5, 'ssim'),
        ('standard', 5, 'fid'), ('irflow', 1, 'psnr'),
        ('irflow', 1, 'psnr_y')])

  def test_rows_merge_and_none_steps(self):
    rows = [Row('a', 'standard', None, None, {'psnr': 10.0}),
            Row('a', 'standard', None, None, {'lpips_vgg': 0.3})]
    s = reporting.summarize(rows)
    self.assertEqual([(e.rf_steps, e.metric, e.mean) for e in s],
                     [(None, 'psnr', 10.0), (None, 'lpips_vgg', 0.3)])

  def test_duplicates_and_mismatches_raise(self):
    with self.assertRaisesRegex(ValueError, 'Duplicate'):
      reporting.summarize([Row('a', 'standard', 1, 0, {'psnr': 1.0}),
                           Row('a', 'standard', 1, 0, {'psnr': 2.0})])
    with self.assertRaisesRegex(ValueError, 'different images'):
      reporting.summarize([Row('a', 'standard', 1, 0, {'psnr': 1.0}),
                           Row('b', 'standard', 1, 1, {'psnr': 2.0})])
    with self.assertRaisesRegex(ValueError, 'both per image'):
      reporting.summarize([
          Row('a', 'standard', 1, 0, {'fid': 1.0}),
          Row(reporting.DATASET_ROW, 'standard', 1, 0, {'fid': 2.0})])

  def test_non_finite_propagates(self):
    s = reporting.summarize([Row('a', 'standard', 1, 0, {'psnr': math.inf}),
                             Row('b', 'standard', 1, 0, {'psnr': 30.0})])
    self.assertEqual(s[0].mean, math.inf)


class JsonTest(absltest.TestCase):

  def test_round_trip(self):
    s = reporting.summarize(_rows() + [
        Row('c', 'restorect_files', 2, 0, {'psnr': math.inf})])
    path = os.path.join(_tmpdir(self), 'summary.json')
    doc = reporting.write_summary_json(
        path, s, protocols=['standard', protocols.get('irflow'),
                            'restorect_files'],
        manifest_sha256='ab' * 32, checkpoint_sha256='cd' * 32,
        dataset='lol_v1', extra={'command': 'evaluate --x'})
    with open(path, encoding='utf-8') as f:
      strict = json.loads(f.read(), parse_constant=lambda c: 1 / 0)
    self.assertEqual(strict['rf_steps'], [1, 2, 5])
    self.assertEqual(strict['seeds'], [0, 1])
    self.assertEqual(strict['command'], 'evaluate --x')
    self.assertEqual(strict['protocols'][0]['description'],
                     protocols.get('standard').description)
    self.assertEqual(strict['protocols'][1]['name'], 'irflow')
    back = reporting.read_summary_json(path)
    self.assertEqual(back['manifest_sha256'], 'ab' * 32)
    self.assertEqual(back['checkpoint_sha256'], 'cd' * 32)
    self.assertEqual(back['dataset'], 'lol_v1')
    self.assertLen(back['results'], len(s))
    for a, b in zip(s, back['results'], strict=True):
      for f in ('protocol', 'rf_steps', 'metric', 'mean', 'std', 'n_seeds',
                'n_images', 'image_std'):
        self.assertTrue(_same(getattr(a, f), getattr(b, f)), f)
      self.assertEqual(dict(a.per_seed), dict(b.per_seed))
    self.assertEqual(doc['format'], reporting.SUMMARY_FORMAT)

  def test_unknown_protocol_name_raises(self):
    path = os.path.join(_tmpdir(self), 'summary.json')
    with self.assertRaisesRegex(ValueError, 'Unknown evaluation protocol'):
      reporting.write_summary_json(path, [], protocols=['nope'],
                                   manifest_sha256='0', checkpoint_sha256=None)
    self.assertFalse(os.path.exists(path))


class ManifestTest(absltest.TestCase):

  def _make(self, root):
    os.makedirs(os.path.join(root, 'low'))
    files = {'low/1.png': b'one', 'low/2.png': b'two', 'high.png': b'3'}
    for name, data in files.items():
      with open(os.path.join(root, name), 'wb') as f:
        f.write(data)
    return [os.path.join(root, n) for n in files]

  def test_hash_definition(self):
    root = _tmpdir(self)
    files = self._make(root)
    lines = ''.join(f'{n}\t{hashlib.sha256(d).hexdigest()}\n' for n, d in
                    sorted([('high.png', b'3'), ('low/1.png', b'one'),
                            ('low/2.png', b'two')]))
    want = hashlib.sha256(lines.encode()).hexdigest()
    self.assertEqual(reporting.manifest_hash(files), want)
    self.assertEqual(reporting.manifest_hash(files[::-1], root=root), want)

  def test_changes(self):
    root = _tmpdir(self)
    files = self._make(root)
    h0 = reporting.manifest_hash(files, root)
    # Same files elsewhere: same hash.
    other = os.path.join(_tmpdir(self), 'copy')
    shutil.copytree(root, other)
    moved = [os.path.join(other, os.path.relpath(f, root)) for f in files]
    self.assertEqual(reporting.manifest_hash(moved, other), h0)
    # One byte changed.
    with open(files[0], 'wb') as f:
      f.write(b'onE')
    h1 = reporting.manifest_hash(files, root)
    self.assertNotEqual(h1, h0)
    # A rename with the same bytes.
    os.rename(files[1], files[1] + '.bak')
    files[1] += '.bak'
    self.assertNotEqual(reporting.manifest_hash(files, root), h1)
    # A file fewer.
    self.assertNotEqual(reporting.manifest_hash(files[:2], root), h1)

  def test_errors(self):
    root = _tmpdir(self)
    files = self._make(root)
    with self.assertRaises(ValueError):
      reporting.manifest_hash([])
    with self.assertRaisesRegex(ValueError, 'twice'):
      reporting.manifest_hash([files[0], files[0]])
    with self.assertRaisesRegex(ValueError, 'not under'):
      reporting.manifest_hash(files, root=os.path.join(root, 'low'))


class TableTest(absltest.TestCase):

  def test_format(self):
    s = reporting.summarize(_rows())
    text = reporting.format_table(s)
    lines = text.splitlines()
    header = lines[0]
    self.assertEqual(header.split(), ['protocol', 'steps', 'psnr', 'ssim',
                                      'fid', 'psnr_y'])
    row5 = next(l for l in lines if l.startswith('standard') and ' 5 ' in l)
    self.assertIn('22.000 ± 1.414', row5)
    self.assertIn('0.6500 ± 0.0707', row5)
    self.assertIn('42.00 ± 2.83', row5)
    # Right-aligned under the header.
    self.assertEqual(row5.index('1.414') + len('1.414'),
                     header.index('psnr') + len('psnr'))
    row1 = next(l for l in lines if l.startswith('standard') and ' 1 ' in l)
    self.assertIn('18.500', row1)
    self.assertNotIn('±', row1)  # one seed
    self.assertIn(' - ', row1 + ' ')  # no FID at 1 step
    for name in ('standard', 'irflow'):
      self.assertIn(f'{name}: {protocols.get(name).description}', text)
    self.assertIn('sample std', text)

  def test_custom_description(self):
    s = reporting.summarize([Row('a', 'mine', 1, 0, {'psnr': 1.0})])
    self.assertIn('mine: my way', reporting.format_table(s, {'mine': 'my way'}))
    self.assertIn('not in the registry', reporting.format_table(s))


class PlotTest(absltest.TestCase):

  def test_png(self):
    s = reporting.summarize(_rows())
    path = os.path.join(_tmpdir(self), 'plot.png')
    reporting.plot_steps_vs_quality(s, path)
    with Image.open(path) as img:
      self.assertEqual(img.format, 'PNG')
      self.assertEqual(img.size, (720, 480))
      pixels = np.asarray(img.convert('RGB')).reshape(-1, 3)

    def count(colour):
      return int(np.all(pixels == colour, axis=1).sum())

    # The 1 -> 5 step line of 'standard' is drawn, not just its markers;
    # 'irflow' has one point (a marker); there is no third protocol.
    self.assertGreater(count(reporting._PALETTE[0]), 600)
    self.assertGreater(count(reporting._PALETTE[1]), 20)
    self.assertEqual(count(reporting._PALETTE[2]), 0)
    self.assertEqual(os.listdir(os.path.dirname(path)), ['plot.png'])

  def test_figure_content(self):
    fig = reporting.steps_vs_quality_figure(reporting.summarize(_rows()))
    (ax,) = fig.axes
    self.assertEqual(ax.get_title(), 'psnr vs RF steps')
    self.assertEqual([t.get_text() for t in ax.get_xticklabels()],
                     ['1', '5'])  # Evenly spaced at x = 0, 1.
    standard, irflow = ax.containers
    self.assertEqual([standard.get_label(), irflow.get_label()],
                     ['standard', 'irflow'])
    self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()],
                     ['standard', 'irflow'])
    # _rows(): standard at 1 step, one seed: mean(18, 19); at 5 steps the
    # seed means are 21 and 23, so 22 +- their sample std sqrt(2).
    np.testing.assert_allclose(standard.lines[0].get_xydata(),
                               [[0, 18.5], [1, 22.0]])
    bar = standard.lines[2][0].get_segments()[1]
    np.testing.assert_allclose(bar, [[1, 22 - math.sqrt(2)],
                                     [1, 22 + math.sqrt(2)]])
    np.testing.assert_allclose(irflow.lines[0].get_xydata(), [[0, 17.25]])

  def test_custom_size_single_point_and_errors(self):
    s = reporting.summarize([Row('a', 'standard', 4, 0, {'psnr': 30.0}),
                             Row('a', 'standard', None, 0, {'psnr': 1.0})])
    path = os.path.join(_tmpdir(self), 'p.png')
    reporting.plot_steps_vs_quality(s, path, size=(400, 300), title='t')
    with Image.open(path) as img:
      self.assertEqual(img.size, (400, 300))
    with self.assertRaisesRegex(ValueError, 'ssim'):
      reporting.plot_steps_vs_quality(s, path, metric='ssim')
    with self.assertRaisesRegex(ValueError, 'too small'):
      reporting.plot_steps_vs_quality(s, path, size=(80, 300))


if __name__ == '__main__':
  absltest.main()
