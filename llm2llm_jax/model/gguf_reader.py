"""gguf's GGUFReader over a plain array of the mapped file, so that parsing a GGUF's metadata is cheap.

GGUFReader keeps the file as an `np.memmap` and takes a view of it for every value it parses: every
string of an embedded vocabulary (49k for SmolLM2, 262k for Gemma 3) costs several views. Each view of a
memmap runs memmap's own Python `__getitem__` and `__array_finalize__`, which made up most of a parse. A
plain ndarray over the same mapping gives the same bytes without them, and tensors' data still come straight
from the mapped file (docs/performance.md, "Reading a GGUF's metadata")."""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader


class MappedGGUF(GGUFReader):
    """A read-only GGUFReader whose `data` (and so every field and tensor) is a plain ndarray view."""

    def __init__(self, path: str):
        super().__init__(path, mode="r")

    @property
    def data(self) -> np.ndarray:
        return self._array

    @data.setter
    def data(self, value: np.ndarray) -> None:
        # GGUFReader.__init__ assigns the memmap here before it parses anything; the view keeps it open
        self._array = value.view(np.ndarray)
