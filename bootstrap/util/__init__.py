"""Utilities every phase shares (errors, logging, secrets, values, the Docker engine's URL,
the run directory, proxies, step timings): standard library only, so the root phase can
use them."""
