"""Tests for restorect_jax.core.metric_writers (no TensorFlow involved)."""

import contextlib
import glob
import io
import json
import math
import os
import struct
import sys
import tempfile
from unittest import mock

import numpy as np
from absl.testing import absltest
from PIL import Image

from restorect_jax.core import metric_writers
from restorect_jax.evaluation import metrics


def _read_events(logdir):
  """All tensorboardX Event protos under ``logdir`` (TFRecord framing)."""
  from tensorboardX.proto import event_pb2
  events = []
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents*'))):
    with open(path, 'rb') as f:
      buf = f.read()
    pos = 0
    while pos < len(buf):
      (n,) = struct.unpack('<Q', buf[pos:pos + 8])
      pos += 12  # length + its masked CRC
      events.append(event_pb2.Event.FromString(buf[pos:pos + n]))
      pos += n + 4  # data + its masked CRC
  return events


def _strict_json(line):
  """json.loads that rejects the non-standard NaN / Infinity tokens."""
  def bad(tok):
    raise ValueError(f'non-standard JSON token {tok}')
  return json.loads(line, parse_constant=bad)


class MetricWriterTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    tmp = tempfile.TemporaryDirectory()
    self.addCleanup(tmp.cleanup)
    self.workdir = os.path.join(tmp.name, 'workdir')  # created by the writer

  def test_jsonl_lines_parse_and_hold_values(self):
    with metric_writers.MetricWriter(self.workdir) as w:
      w.write_scalars(10, {'train/loss': np.float32(0.25), 'lr': 2e-4,
                           'count': np.int64(3), 'arr': np.array(1.5)})
      w.write_scalars(np.int32(20), {'eval/psnr': math.inf,
                                     'bad': float('nan'), 'neg': -math.inf})
      with self.assertRaises(ValueError):
        w.write_scalars(30, {'vec': np.ones(3)})
    path = os.path.join(self.workdir, 'metrics.jsonl')
    with open(path, encoding='utf-8') as f:
      lines = f.read().splitlines()
    self.assertLen(lines, 2)
    first, second = (_strict_json(l) for l in lines)
    self.assertEqual(first, {'step': 10, 'train/loss': 0.25, 'lr': 2e-4,
                             'count': 3.0, 'arr': 1.5})
    self.assertIsInstance(first['step'], int)
    self.assertIsInstance(first['count'], float)
    self.assertEqual(second, {'step': 20, 'eval/psnr': 'inf', 'bad': 'nan',
                              'neg': '-inf'})
    recs = metric_writers.read_jsonl(path)
    self.assertEqual(recs[0], first)
    self.assertEqual(recs[1]['eval/psnr'], math.inf)
    self.assertEqual(recs[1]['neg'], -math.inf)
    self.assertTrue(math.isnan(recs[1]['bad']))
    # A workdir is accepted too; raw mode keeps the strings.
    self.assertEqual(metric_writers.read_jsonl(
        self.workdir, decode_nonfinite=False)[1]['bad'], 'nan')

  def test_flushes_each_write_and_appends_on_resume(self):
    w = metric_writers.MetricWriter(self.workdir, tensorboard=False)
    w.write_scalars(1, {'a': 1.0})
    # Readable before flush() / close().
    self.assertEqual(metric_writers.read_jsonl(self.workdir),
                     [{'step': 1, 'a': 1.0}])
    w.close()
    w.close()  # idempotent
    with self.assertRaises(RuntimeError):
      w.write_scalars(2, {'a': 2.0})
    with metric_writers.MetricWriter(self.workdir, tensorboard=False) as w2:
      w2.write_scalars(2, {'a': 2.0})
    self.assertEqual([r['step'] for r in
                      metric_writers.read_jsonl(self.workdir)], [1, 2])
    self.assertFalse(os.path.exists(os.path.join(self.workdir,
                                                 'tensorboard')))

  def test_tensorboard_event_file(self):
    with metric_writers.MetricWriter(self.workdir) as w:
      self.assertTrue(w.has_tensorboard)
      w.write_scalars(5, {'train/loss': 0.5})
      w.write_scalars(6, {'train/loss': 0.25})
      w.write_images(6, {'grid': np.zeros((8, 8, 3), np.float32)})
      w.write_hparams({'lr': 1e-3})
    tb = os.path.join(self.workdir, 'tensorboard')
    self.assertNotEmpty(glob.glob(os.path.join(tb, 'events.out.tfevents*')))
    scalars, images = [], []
    for ev in _read_events(tb):
      for v in ev.summary.value:
        if v.HasField('simple_value'):
          scalars.append((ev.step, v.tag, v.simple_value))
        elif v.HasField('image'):
          images.append((ev.step, v.tag, v.image.height, v.image.width))
    self.assertEqual(scalars, [(5, 'train/loss', 0.5),
                               (6, 'train/loss', 0.25)])
    self.assertEqual(images, [(6, 'grid', 8, 8)])

  def test_without_tensorboardx_warns_once_and_keeps_jsonl(self):
    with mock.patch.dict(sys.modules, {'tensorboardX': None}), \
         mock.patch.object(metric_writers, '_warned_no_tensorboardx', False), \
         self.assertLogs('absl', level='WARNING') as logs:
      for i in range(2):
        with metric_writers.MetricWriter(self.workdir) as w:
          self.assertFalse(w.has_tensorboard)
          w.write_scalars(i, {'x': float(i)})
          w.write_images(i, {'img': np.ones((4, 4, 3), np.float32)})
    self.assertLen([r for r in logs.records if 'tensorboardX' in
                    r.getMessage()], 1)
    self.assertLen(metric_writers.read_jsonl(self.workdir), 2)
    self.assertFalse(os.path.exists(os.path.join(self.workdir,
                                                 'tensorboard')))
    self.assertTrue(os.path.exists(
        os.path.join(self.workdir, 'images', 'img_1.png')))

  def test_write_images_pngs(self):
    rng = np.random.default_rng(0)
    f = rng.uniform(-0.1, 1.1, (12, 16, 3)).astype(np.float32)
    u = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    g = rng.uniform(0, 1, (5, 6))
    with metric_writers.MetricWriter(self.workdir) as w:
      w.write_images(300, {'float_img': f, 'uint8_img': u,
                           'eval/gray': g})
    d = os.path.join(self.workdir, 'images')
    self.assertCountEqual(os.listdir(d), ['float_img_300.png',
                                          'uint8_img_300.png',
                                          'eval_gray_300.png'])
    np.testing.assert_array_equal(
        np.asarray(Image.open(os.path.join(d, 'float_img_300.png'))),
        metrics.to_uint8(f, 'round'))
    np.testing.assert_array_equal(
        np.asarray(Image.open(os.path.join(d, 'uint8_img_300.png'))), u)
    gray = np.asarray(Image.open(os.path.join(d, 'eval_gray_300.png')))
    self.assertEqual(gray.shape, (5, 6, 3))
    np.testing.assert_array_equal(gray[..., 1], metrics.to_uint8(g))
    with metric_writers.MetricWriter(self.workdir, tensorboard=False) as w:
      with self.assertRaises(ValueError):
        w.write_images(1, {'bad': np.zeros((2, 4, 4, 3))})

  def test_write_hparams(self):
    class FakeConfigDict:

      def to_dict(self):
        return {'model': {'dim': 48}, 'lr': 2e-4, 'path': object}

    with metric_writers.MetricWriter(self.workdir, tensorboard=False) as w:
      w.write_hparams({'old': 1})
      w.write_hparams(FakeConfigDict())
    with open(os.path.join(self.workdir, 'config.json'),
              encoding='utf-8') as f:
      cfg = json.load(f)
    self.assertEqual(cfg['model'], {'dim': 48})
    self.assertEqual(cfg['lr'], 2e-4)
    self.assertIsInstance(cfg['path'], str)
    self.assertNotIn('old', cfg)

  def test_read_jsonl_skips_truncated_lines_and_resume_appends(self):
    os.makedirs(self.workdir)
    path = os.path.join(self.workdir, 'metrics.jsonl')
    with open(path, 'w', encoding='utf-8') as f:
      f.write('{"step": 1, "a": 1.0}\n\n{"step": 2, "a": 2.0}\n{"step": 3, "a')
    with self.assertLogs('absl', level='WARNING'):
      self.assertEqual([r['step'] for r in metric_writers.read_jsonl(path)],
                       [1, 2])
    # A resumed writer starts a new line after the half-written one.
    with metric_writers.MetricWriter(self.workdir, tensorboard=False) as w:
      w.write_scalars(3, {'a': 3.0})
    with self.assertLogs('absl', level='WARNING'):
      recs = metric_writers.read_jsonl(path)
    self.assertEqual(recs[-1], {'step': 3, 'a': 3.0})
    self.assertLen(recs, 3)


class ImageGridTest(absltest.TestCase):

  def test_shape_padding_and_separators(self):
    a = np.zeros((8, 10, 3), np.float32)     # black
    b = np.full((6, 12, 3), 0.5, np.float32)  # grey, wider and shorter
    c = np.zeros((8, 10), np.uint8)          # grayscale
    grid = metric_writers.image_grid([[a, b, a], [c, a]])
    # Cells 8x12, 2 rows x 3 cols, 2-px separators:
    # H = 2*8 + 2 = 18, W = 3*12 + 2*2 = 40.
    self.assertEqual(grid.shape, (18, 40, 3))
    self.assertEqual(grid.dtype, np.uint8)
    self.assertTrue(np.all(grid[:8, :10] == 0))        # a, top-left
    self.assertTrue(np.all(grid[:8, 10:12] == 255))    # a's padding to W=12
    self.assertTrue(np.all(grid[:, 12:14] == 255))     # vertical separator
    self.assertTrue(np.all(grid[8:10] == 255))         # horizontal separator
    self.assertTrue(np.all(grid[:6, 14:26] == 128))    # b, rounded 127.5
    self.assertTrue(np.all(grid[6:8, 14:26] == 255))   # b's padding to H=8
    self.assertTrue(np.all(grid[10:18, 0:10] == 0))    # c
    self.assertTrue(np.all(grid[10:18, 28:40] == 255))  # missing cell

  def test_lq_out_gt_rows(self):
    rng = np.random.default_rng(0)
    rows = [[rng.uniform(size=(16, 16, 3)) for _ in range(3)]
            for _ in range(2)]
    grid = metric_writers.image_grid(rows)
    self.assertEqual(grid.shape, (34, 52, 3))
    np.testing.assert_array_equal(grid[18:34, 36:52],
                                  metrics.to_uint8(rows[1][2]))
    with self.assertRaises(ValueError):
      metric_writers.image_grid([[]])


class ProgressReporterTest(absltest.TestCase):

  def test_every_steps_rate_and_eta(self):
    t = [100.0]
    printed = []
    rep = metric_writers.ProgressReporter(
        1000, every_steps=10, every_secs=None, print_fn=printed.append,
        clock=lambda: t[0])
    for step in range(1, 10):
      t[0] += 0.2
      self.assertIsNone(rep(step, {'loss': 1.0}))
    t[0] += 0.2
    with self.assertLogs('absl', level='INFO') as logs:
      line = rep(10, {'loss': np.float32(0.123456), 'lr': 2e-4})
    # 10 steps in 2 s = 5 steps/s; 990 steps left -> 198 s = 0:03:18.
    self.assertIsNotNone(line)
    self.assertIn('step 10/1000 (1.0%)', line)
    self.assertIn('5 steps/s', line)
    self.assertIn('ETA 0:03:18', line)
    self.assertIn('loss=0.1235', line)
    self.assertIn('lr=0.0002', line)
    self.assertEqual(printed, [line])
    self.assertTrue(any(line in r.getMessage() for r in logs.records))

  def test_resume_and_every_secs(self):
    t = [0.0]
    rep = metric_writers.ProgressReporter(
        200, every_steps=None, every_secs=30.0, start_step=100,
        print_fn=None, clock=lambda: t[0])
    t[0] = 10.0
    self.assertIsNone(rep(105))
    t[0] = 40.0
    line = rep(120)
    # Only the 20 steps since the resume count: 20 / 40 s = 0.5 steps/s;
    # 80 left -> 160 s.
    self.assertIn('step 120/200 (60.0%)', line)
    self.assertIn('0.5 steps/s', line)
    self.assertIn('ETA 0:02:40', line)
    t[0] = 41.0
    self.assertIsNone(rep(121))
    t[0] = 50.0
    last = rep(200)  # the final step always reports
    self.assertIn('step 200/200', last)
    self.assertIn('ETA 0:00:00', last)
    self.assertIsNone(rep(200))  # no duplicate for the same step

  def test_real_clock_prints(self):
    rep = metric_writers.ProgressReporter(4, every_steps=2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      self.assertIsNone(rep(1))
      line = rep(2, {'loss': 0.5})
    self.assertEqual(out.getvalue(), line + '\n')
    self.assertIn('steps/s', line)
    self.assertIn('ETA', line)


if __name__ == '__main__':
  absltest.main()
