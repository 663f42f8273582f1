"""Figures of a run, for docs/reliability.md: when RELIABILITY_FIGURES names a file, tests append
one JSON line per figure to it."""

from __future__ import annotations

import json
import os
from typing import Any


def record(name: str, **values: Any) -> None:
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as figures:
            figures.write(json.dumps({"figure": name, **values}) + "\n")
