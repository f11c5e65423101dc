"""Seeds derived from the run's seed and a purpose: the same on every process and every rerun."""

from __future__ import annotations

import hashlib


def stable_seed(*parts) -> int:
    """A seed derived from the run seed and a purpose (the same on every process and every rerun)."""
    return (
        int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF
    )
