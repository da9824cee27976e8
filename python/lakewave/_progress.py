"""Progress bars for long loads: tqdm when it is installed and someone is
watching (a notebook or a terminal), off otherwise or when the environment
variable ``LAKEWAVE_PROGRESS`` is ``0``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def reporter(name: str, wanted: bool | None) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A callback for the engine's (rows, bytes) reports and a function that
    closes the bar. ``wanted`` None means: decide from the environment."""
    if wanted is None:
        wanted = os.environ.get("LAKEWAVE_PROGRESS", "1") != "0" and _interactive()
    if not wanted:
        return None, lambda: None
    try:
        if "ipykernel" in sys.modules:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    bar = tqdm(desc=f"loading {name}", unit=" rows", unit_scale=True)
    seen = 0

    def report(rows: int, _bytes: int) -> None:
        nonlocal seen
        bar.update(rows - seen)
        seen = rows

    return report, bar.close
