"""Start-up toolkit for Prefect 1.x agent containers.

At container start the bootstrap drops root privileges, installs EXTRA_CONDA_PACKAGES and
EXTRA_PIP_PACKAGES, waits for the Prefect Server, creates the tenant and projects
idempotently, and finally replaces itself with ``prefect agent <type> start``.
"""

__version__ = "0.1.0"
