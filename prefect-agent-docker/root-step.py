"""The steps of the bootstrap that may run as root, run safely.

Installed root-owned in /usr/local/lib/prefect-agent (with a root-owned copy of the
standard-library-only bootstrap modules it needs) and run with the base image's own,
root-owned interpreter in isolated mode (``python -I -S``: no site-packages, no PYTHON*
variables, no user site): nothing the runtime user can write is loaded.

    root-step.py start CMD...        the ENTRYPOINT: drop root, then exec tini (PID 1) and the
                                     entrypoint script with CMD
    root-step.py drop-root CMD...    drop root, then the bootstrap's entrypoint runs CMD
    root-step.py run-as-user CMD...  run CMD as the runtime user, never root (the wrappers
                                     of the runtime environment's commands: docker exec)
    root-step.py healthcheck         the image's HEALTHCHECK
"""

import sys

sys.path.insert(0, "/usr/local/lib/prefect-agent")

step, *args = sys.argv[1:] or ["healthcheck"]
if step == "start":
    from bootstrap.root.privileges import start

    sys.exit(start(args))
if step == "drop-root":
    from bootstrap.root.privileges import main

    sys.exit(main(args))
if step == "run-as-user":
    from bootstrap.root.privileges import run_as_user

    sys.exit(run_as_user(args))
if step == "healthcheck":
    from bootstrap.root.healthcheck import main

    sys.exit(main())
sys.exit(f"root-step.py: unknown step {step!r}")
