"""Small, reviewed source data per domain; each domain's data.py builds its sandbox DB from here."""

from __future__ import annotations

from pathlib import Path


def source_dir(domain: str) -> Path:
    """The folder holding ``domain``'s sources."""
    path = Path(__file__).resolve().parent / domain
    if not path.is_dir():
        raise FileNotFoundError(f"no sandbox data for domain {domain!r} at {path}")
    return path
