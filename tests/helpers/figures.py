"""Measured figures in test output: ``pytest -s | grep FIGURE`` collects them (docs/testing.md
quotes them)."""

from __future__ import annotations


def figure(name: str, value: float, unit: str = "s") -> None:
    """Print a measured figure (``pytest -s`` shows it)."""
    print(f"\nFIGURE {name}: {value:.2f} {unit}")
