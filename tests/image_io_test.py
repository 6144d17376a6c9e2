"""Tests for restorect_jax.data.image_io: decoding, listing, PNG writes."""

import os
import shutil
import tempfile
from unittest import mock

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from PIL import Image

import testutil
from restorect_jax.data import image_io
from restorect_jax.data import input_pipeline
from restorect_jax.evaluation import metrics

_ORIENTATION = 0x0112

# EXIF orientation → what a viewer does to the stored (H, W, C) pixels.
_EXIF_EXPECTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # Mirror left-right.
    3: lambda a: np.rot90(a, 2),
    4: lambda a: a[::-1],  # Mirror top-bottom.
    5: lambda a: a.swapaxes(0, 1),  # Transpose.
    6: lambda a: np.rot90(a, -1),  # Rotate 90 degrees clockwise.
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # Transverse.
    8: lambda a: np.rot90(a, 1),  # Rotate 90 degrees counter-clockwise.
}


_png16 = testutil.write_png16


class _TmpDirTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp(prefix='image_io_test_')
    self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
    self.rng = np.random.default_rng(0)

  def path(self, *parts: str) -> str:
    return os.path.join(self.root, *parts)

  def save(self, name: str, arr: np.ndarray, **kw) -> str:
    path = self.path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path

  def rgb(self, h: int = 6, w: int = 9) -> np.ndarray:
    return self.rng.integers(0, 256, (h, w, 3), np.uint8)


class ReadTest(_TmpDirTest):

  def test_rgb_png_float32(self):
    arr = self.rgb()
    path = self.save('a.png', arr)
    img = image_io.read_image(path)
    self.assertEqual((img.dtype, img.shape), (np.float32, (6, 9, 3)))
    # Bit-identical to the dataset pipeline's conversion.
    np.testing.assert_array_equal(img, input_pipeline._as_float32(arr))
    np.testing.assert_array_equal(
        img, arr.astype(np.float32) * np.float32(1 / 255)
    )
    np.testing.assert_array_equal(image_io.read_image_uint8(path), arr)
    self.assertEqual(image_io.image_size(path), (6, 9))

  @parameterized.parameters(*range(1, 9))
  def test_exif_orientation_png(self, orientation):
    arr = self.rgb(4, 7)  # Non-square, so transposes are visible.
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    path = self.save('o.png', arr, exif=exif)
    with Image.open(path) as im:
      self.assertEqual(im.getexif().get(_ORIENTATION), orientation)
    expected = _EXIF_EXPECTED[orientation](arr)
    np.testing.assert_array_equal(
        image_io.read_image(path), image_io.uint8_to_float32(expected)
    )
    np.testing.assert_array_equal(
        image_io.read_image_uint8(path, exif_transpose=True), expected
    )
    # The dataset reader keeps pixels as stored.
    np.testing.assert_array_equal(image_io.read_image_uint8(path), arr)
    np.testing.assert_array_equal(input_pipeline.read_image(path), arr)

  def test_exif_orientation_jpeg(self):
    # A smooth, strongly asymmetric image survives JPEG compression.
    yy, xx = np.meshgrid(np.arange(32), np.arange(48), indexing='ij')
    arr = np.stack([yy * 7, xx * 5, (yy + xx) * 3], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[_ORIENTATION] = 6
    path = self.save('o.jpg', arr, exif=exif, quality=95)
    img = image_io.read_image(path)
    self.assertEqual(img.shape, (48, 32, 3))
    rotated = image_io.uint8_to_float32(np.rot90(arr, -1))
    self.assertLess(float(np.abs(img - rotated).mean()), 0.02)
    self.assertEqual(image_io.read_image_uint8(path).shape, (32, 48, 3))

  def test_conversions(self):
    gray = self.rng.integers(0, 256, (5, 6), np.uint8)
    rgba = self.rng.integers(0, 256, (5, 6, 4), np.uint8)
    rgba[0, 0, 3] = 0  # Transparent: colour kept, not composited.
    g16 = self.rng.integers(0, 65536, (5, 6), np.uint16)
    g16[0, :3] = [0, 255, 65535]
    c16 = self.rng.integers(0, 65536, (5, 6, 3), np.uint16)
    paths = {
        'gray': self.save('gray.png', gray),
        'rgba': self.save('rgba.png', rgba),
        'g16': self.save('g16.png', g16),
        'c16': _png16(self.path('c16.png'), c16),
        'pal': self.path('pal.png'),
    }
    Image.fromarray(self.rgb(5, 6)).convert('P').save(paths['pal'])
    with Image.open(paths['g16']) as im:
      self.assertEqual(im.mode, 'I;16')
    out = {k: image_io.read_image(p) for k, p in paths.items()}
    for k, img in out.items():
      self.assertEqual((img.dtype, img.shape), (np.float32, (5, 6, 3)), k)
      self.assertTrue(0.0 <= img.min() and img.max() <= 1.0, k)
    np.testing.assert_array_equal(
        out['gray'],
        image_io.uint8_to_float32(np.repeat(gray[..., None], 3, -1)),
    )
    np.testing.assert_array_equal(
        out['rgba'], image_io.uint8_to_float32(rgba[..., :3])
    )
    # 16-bit gray keeps its precision in the float reader ...
    g16_float = g16.astype(np.float32) * np.float32(1 / 65535)
    np.testing.assert_array_equal(out['g16'][..., 0], g16_float)
    self.assertEqual(out['g16'][0, 0, 1], 0.0)
    self.assertEqual(out['g16'][0, 2, 1], 1.0)  # 65535 maps to 1 exactly.
    np.testing.assert_allclose(out['g16'][0, 1, 1], 255 / 65535, rtol=1e-7)
    # ... and its high byte in the uint8 reader (the pipeline's behaviour).
    np.testing.assert_array_equal(
        image_io.read_image_uint8(paths['g16'])[..., 2], g16 >> 8
    )
    # 16-bit RGB arrives from Pillow as 8 bits per channel (high byte).
    np.testing.assert_array_equal(
        out['c16'], image_io.uint8_to_float32((c16 >> 8).astype(np.uint8))
    )
    with Image.open(paths['pal']) as im:
      pal_rgb = np.asarray(im.convert('RGB'))
    np.testing.assert_array_equal(
        out['pal'], image_io.uint8_to_float32(pal_rgb)
    )

  def test_float_tiff_rejected(self):
    path = self.path('f.tif')
    Image.fromarray(self.rng.random((4, 5)).astype(np.float32)).save(path)
    with self.assertRaisesRegex(image_io.ImageReadError, 'f.tif.*mode F'):
      image_io.read_image(path)

  def test_missing_file(self):
    with self.assertRaisesRegex(FileNotFoundError, 'nope.png'):
      image_io.read_image(self.path('nope.png'))

  @parameterized.named_parameters(
      ('garbage_png', 'bad.png', lambda good: os.urandom(200)),
      ('text_as_jpeg', 'notes.jpg', lambda good: b'hello, not a jpeg\n'),
      ('empty_png', 'empty.png', lambda good: b''),
      ('truncated_png', 'cut.png', lambda good: good[: len(good) // 2]),
      ('truncated_jpeg', 'cut.jpg', lambda good: good[: len(good) // 2]),
      ('png_bad_idat', 'idat.png', lambda good: good[:60] + b'\xff' * 8
       + good[68:]),
  )
  def test_corrupt_file_names_the_file(self, name, corrupt):
    good_path = self.save('good' + os.path.splitext(name)[1], self.rgb(64, 64))
    with open(good_path, 'rb') as f:
      good = f.read()
    path = self.path(name)
    with open(path, 'wb') as f:
      f.write(corrupt(good))
    for read in (image_io.read_image, image_io.read_image_uint8):
      with self.assertRaises(image_io.ImageReadError) as cm:
        read(path)
      self.assertIn(path, str(cm.exception))
      self.assertIsInstance(cm.exception, ValueError)

  def test_header_error_names_the_file(self):
    path = self.path('bad.png')
    with open(path, 'wb') as f:
      f.write(b'nope')
    with self.assertRaisesRegex(image_io.ImageReadError, 'bad.png'):
      image_io.image_size(path)


class ListInputsTest(_TmpDirTest):

  def make_folder(self) -> str:
    folder = self.path('in')
    for name in ('b.png', 'a.JPG', '10.png', '2.webp', 'c.tif'):
      self.save(os.path.join('in', name), self.rgb(4, 4))
    for name in ('notes.txt', '.hidden.png', 'noext'):
      with open(os.path.join(folder, name), 'w') as f:
        f.write('x')
    os.makedirs(os.path.join(folder, 'sub.png'))  # A folder, not a file.
    self.save(os.path.join('in', 'deeper', 'd.png'), self.rgb(4, 4))
    return folder

  def test_file(self):
    path = self.save('one.png', self.rgb())
    self.assertEqual(image_io.list_inputs(path), [path])

  def test_folder_sorted_non_recursive(self):
    folder = self.make_folder()
    got = image_io.list_inputs(folder)
    names = ['10.png', '2.webp', 'a.JPG', 'b.png', 'c.tif']
    self.assertEqual(got, [os.path.join(folder, n) for n in names])

  def test_glob(self):
    folder = self.make_folder()
    self.assertEqual(
        image_io.list_inputs(os.path.join(folder, '*.png')),
        [os.path.join(folder, n) for n in ('10.png', 'b.png')],
    )
    # Matches that are not image files are dropped; none left is an error.
    with self.assertRaisesRegex(FileNotFoundError, r'n\*.*2 matches'):
      image_io.list_inputs(os.path.join(folder, 'n*'))
    recursive = image_io.list_inputs(os.path.join(folder, '**', 'd.png'))
    self.assertEqual(recursive, [os.path.join(folder, 'deeper', 'd.png')])

  def test_nothing_found_names_the_spec(self):
    empty = self.path('empty')
    os.makedirs(empty)
    with open(os.path.join(empty, 'readme.txt'), 'w') as f:
      f.write('x')
    cases = [
        self.path('missing.png'),
        self.path('missing_dir'),
        empty,
        self.path('missing_dir', '*.png'),
    ]
    for spec in cases:
      with self.assertRaises(FileNotFoundError) as cm:
        image_io.list_inputs(spec)
      self.assertIn(spec, str(cm.exception))

  def test_output_paths(self):
    out = self.path('out')
    self.assertEqual(
        image_io.output_paths(['a/x.jpg', 'b/y.PNG', 'z.tif'], out),
        [os.path.join(out, n) for n in ('x.png', 'y.png', 'z.png')],
    )
    with self.assertRaisesRegex(ValueError, r'a/x\.jpg and b/x\.png'):
      image_io.output_paths(['a/x.jpg', 'c/w.png', 'b/x.png'], out)


class WritePngTest(_TmpDirTest):

  def test_round_trip_and_parent_dirs(self):
    arr = self.rgb(7, 5)
    path = self.path('a', 'b', 'out.png')
    self.assertEqual(
        image_io.write_png(image_io.uint8_to_float32(arr), path), path
    )
    np.testing.assert_array_equal(image_io.read_image_uint8(path), arr)
    # uint8 input is written unchanged; grayscale shapes work.
    image_io.write_png(arr, self.path('u8.png'))
    np.testing.assert_array_equal(
        image_io.read_image_uint8(self.path('u8.png')), arr
    )
    gray = arr[..., 0]
    for name, img in (('g2.png', gray), ('g3.png', gray[..., None])):
      image_io.write_png(img, self.path(name))
      with Image.open(self.path(name)) as im:
        self.assertEqual(im.mode, 'L')
        np.testing.assert_array_equal(np.asarray(im), gray)

  def test_quantisation(self):
    x = np.array(
        [[[-0.2, 0.0, 1.3], [np.nan, 1.0, 0.5]],
         [[0.5 / 255, 1.5 / 255, 2.5 / 255], [0.4, 0.6, 0.999]]],
        np.float32,
    )
    path = image_io.write_png(x, self.path('q.png'))
    got = image_io.read_image_uint8(path)
    expected = np.round(np.clip(np.nan_to_num(x), 0, 1) * np.float32(255))
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    np.testing.assert_array_equal(got, metrics.to_uint8(x))
    np.testing.assert_array_equal(got[0, 0], [0, 0, 255])  # Clipped.
    np.testing.assert_array_equal(got[0, 1], [0, 255, 128])  # NaN → 0.
    # Half-way values land where float32 x * 255 and half-to-even put them.
    halves = np.round(x[1, 0] * np.float32(255))
    np.testing.assert_array_equal(got[1, 0], halves.astype(np.uint8))
    path = image_io.write_png(x, self.path('t.png'), mode='truncate')
    np.testing.assert_array_equal(
        image_io.read_image_uint8(path), metrics.to_uint8(x, 'truncate')
    )
    np.testing.assert_array_equal(
        image_io.read_image_uint8(path)[1, 1], [102, 153, 254]
    )

  def test_refuses_existing_unless_overwrite(self):
    path = self.path('out.png')
    first, second = self.rgb(), self.rgb()
    image_io.write_png(first, path)
    with self.assertRaisesRegex(FileExistsError, 'out.png'):
      image_io.write_png(second, path)
    np.testing.assert_array_equal(image_io.read_image_uint8(path), first)
    image_io.write_png(second, path, overwrite=True)
    np.testing.assert_array_equal(image_io.read_image_uint8(path), second)
    self.assertEqual(os.listdir(self.root), ['out.png'])

  def test_no_hard_links_fallback(self):
    path = self.path('out.png')
    with mock.patch.object(os, 'link', side_effect=PermissionError('no')):
      image_io.write_png(self.rgb(), path)
      self.assertTrue(os.path.isfile(path))
      with self.assertRaisesRegex(FileExistsError, 'out.png'):
        image_io.write_png(self.rgb(), path)
    self.assertEqual(os.listdir(self.root), ['out.png'])

  def test_permissions_follow_umask(self):
    old = os.umask(0o022)
    try:
      path = image_io.write_png(self.rgb(), self.path('p.png'))
    finally:
      os.umask(old)
    self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)

  def test_failed_write_leaves_nothing_behind(self):
    path = self.path('sub', 'out.png')

    def failing_save(im, fp, *args, **kwargs):
      del im, args, kwargs
      fp.write(b'\x89PNG\r\n\x1a\n partial')
      raise OSError('disk full')

    with mock.patch.object(Image.Image, 'save', failing_save):
      with self.assertRaisesRegex(OSError, 'disk full'):
        image_io.write_png(self.rgb(), path)
    self.assertFalse(os.path.exists(path))
    self.assertEqual(os.listdir(self.path('sub')), [])
    # Overwriting fails the same way: the old file is untouched.
    old = self.rgb()
    image_io.write_png(old, path)
    with mock.patch.object(Image.Image, 'save', failing_save):
      with self.assertRaisesRegex(OSError, 'disk full'):
        image_io.write_png(self.rgb(), path, overwrite=True)
    np.testing.assert_array_equal(image_io.read_image_uint8(path), old)
    self.assertEqual(os.listdir(self.path('sub')), ['out.png'])

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, r'\.png path.*out\.jpg'):
      image_io.write_png(self.rgb(), self.path('out.jpg'))
    with self.assertRaisesRegex(ValueError, r'shape \(4, 4, 4\)'):
      image_io.write_png(np.zeros((4, 4, 4)), self.path('x.png'))
    with self.assertRaisesRegex(ValueError, 'dtype int64'):
      image_io.write_png(np.zeros((4, 4, 3), np.int64), self.path('x.png'))
    self.assertEqual(os.listdir(self.root), [])


if __name__ == '__main__':
  absltest.main()
