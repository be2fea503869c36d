"""numba kernels over Arrow string buffers. Each kernel has a pure-Python reference in tests."""
