"""restorect_jax: RestoRect and IR-Flow rectified-flow restoration in JAX."""

__version__ = '0.1.0'
