"""The root phase: what runs before root is dropped, and the image's HEALTHCHECK.

The image holds a root-owned copy of this package and of :mod:`bootstrap.util` (the
Dockerfile copies the two packages whole) and runs them with the base's interpreter in
isolated mode: they import the standard library and each other only, never the run phase.
"""

# The packages the image copies root-owned, with bootstrap/__init__.py.
ROOT_PHASE_PACKAGES = ("root", "util")
