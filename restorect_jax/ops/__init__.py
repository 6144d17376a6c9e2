"""Numeric primitives shared by data, inference and metrics, each once.

* :mod:`~restorect_jax.ops.padding` — reflect / mirror padding to a size or
  to a multiple, cropping back, ``round_up`` (numpy or JAX arrays).
* :mod:`~restorect_jax.ops.resample` — OpenCV ``INTER_LINEAR`` (bit-exact
  on float32) and ``INTER_CUBIC``, MATLAB ``imresize``, PyTorch bilinear,
  area / box resamplers.
* :mod:`~restorect_jax.ops.dihedral` — the 8 dihedral transforms and their
  inverses (numpy or JAX arrays).
* :mod:`~restorect_jax.ops.quantize` — uint8 quantisation (round, truncate,
  round half up) and uint8 to float32.
* :mod:`~restorect_jax.ops.filters` — normalised Gaussian taps and windows.
* :mod:`~restorect_jax.ops.color` — the luma / grey conversions of the
  references (BasicSR, IR-SDE, OpenCV, piq), each with its own arithmetic.

Functions that accept numpy or JAX arrays pick the array module with
:func:`~restorect_jax.ops.padding.array_module` and return the kind they
were given.
"""
