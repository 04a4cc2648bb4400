"""pyarrow, imported when it is first used.

The column path (loadbay.core.columns, the CSV block reader) needs pyarrow; an API server
that only takes uploads and answers status requests does not, and importing it costs about
60 MB of memory in every process. `pa`, `pc` and `pa_csv` stand for pyarrow, its compute
and its csv modules, and import them on their first attribute look-up (see `_imported`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["pa", "pa_csv", "pc"]


class _Lazy:
    """A module imported on the first look-up of one of its attributes; each attribute is
    kept once looked up (the column path looks up some ninety per chunk, and a look-up through
    `import_module` took ~4 µs)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(_imported(self._name), attribute)
        setattr(self, attribute, value)
        return value


def _imported(name: str) -> Any:
    """The module, with pyarrow's buffers allocated by the C library's malloc: pyarrow's own
    mimalloc kept ~15 MB more in a worker importing 2,000-record chunks (and ~55 MB more with
    10,000-record ones) for no time gained."""
    module = importlib.import_module(name)
    pyarrow = importlib.import_module("pyarrow")
    if pyarrow.default_memory_pool().backend_name != "system":
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    return module


if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
else:
    pa, pc, pa_csv = _Lazy("pyarrow"), _Lazy("pyarrow.compute"), _Lazy("pyarrow.csv")
