"""Pure-Python references shared by the kernel tests (imported from this folder, which pytest
puts on ``sys.path`` for the test modules beside it)."""

from __future__ import annotations

M64 = (1 << 64) - 1


def ref_mix64(x: int) -> int:
    """kernels.tokenize.mix64: the splitmix64 finaliser, modulo 2**64."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)
