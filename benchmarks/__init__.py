"""JAX-vs-PyTorch benchmark scripts (run as ``python -m benchmarks.<name>``)."""
