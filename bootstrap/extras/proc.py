"""Installer processes that an interruption can stop, and signals turned into exceptions.

``docker stop`` makes tini send SIGINT (the image's STOPSIGNAL) to the bootstrap's process
group. Installers run in their own session instead, so they never see that signal: the
bootstrap decides. While extras are installed, SIGINT/SIGTERM/SIGHUP raise
:class:`Interrupted` in the bootstrap, which stops the installer (SIGTERM to its process
group, then SIGKILL), rolls the environment back with signals ignored, and exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 5.0


class Interrupted(BaseException):
    """A stop signal arrived while extras were being installed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM/SIGHUP raise :class:`Interrupted`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[List[int]]:
    """Within the block, stop signals are recorded (yielded list) instead of acted upon."""
    received: List[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in SIGNALS
    }
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass
class Completed:
    argv: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return (self.stdout + "\n" + self.stderr).strip()


def stop_group(process: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started."""
    if process.poll() is not None:
        return
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def executable_identity(path: str) -> str:
    """Who an installer is, cheaply (no subprocess): path, size and mtime of the binary."""
    try:
        info = os.stat(path)
    except OSError:
        return path
    return f"{os.path.realpath(path)}:{info.st_size}:{info.st_mtime_ns}"


def popen(argv: Sequence[str], env: Mapping[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        start_new_session=True,  # not in tini's process group: the bootstrap stops it
        text=True,
        **kwargs,
    )


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    input: Optional[str] = None,
    timeout: Optional[float] = None,
    progress: Optional[str] = None,
) -> Completed:
    """Run ``argv`` (never through a shell), capturing its output; on any exception
    (Interrupted included) stop it and its children before re-raising.

    ``progress``: what the run is (e.g. "Pip step (uv)"); while it runs, a log line every
    PROGRESS_SECONDS says how long, how much it has read, and its last line of output.
    """
    started = time.monotonic()
    process = popen(
        argv,
        env,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        if progress is None or input is not None:
            stdout, stderr = process.communicate(input=input, timeout=timeout)
        else:
            stdout, stderr = _watch(process, progress, started, timeout)
    except BaseException:
        stop_group(process)
        raise
    return Completed(list(argv), process.returncode, stdout, stderr, time.monotonic() - started)


PROGRESS_SECONDS = 10.0


class Progress(threading.Thread):
    """While a long step runs: every PROGRESS_SECONDS a log line with how long it has run,
    how much its processes have read, and its last line of output (when known)."""

    def __init__(self, label: str, pgid: int, last_line=lambda: "") -> None:
        super().__init__(name="progress", daemon=True)
        self.label = label
        self.pgid = pgid
        self.last_line = last_line
        self.started = time.monotonic()
        self.done = threading.Event()

    def run(self) -> None:
        from bootstrap.util.log import logger

        while not self.done.wait(PROGRESS_SECONDS):
            last = self.last_line()[:200]
            logger.info(
                "%s: still running after %.0f s (%.1f MB read so far)%s",
                self.label,
                time.monotonic() - self.started,
                group_read_bytes(self.pgid) / 1e6,
                f"; last output: {last}" if last else "",
            )

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()


def _watch(
    process: subprocess.Popen, label: str, started: float, timeout: Optional[float]
) -> Tuple[str, str]:
    """Wait for ``process``, reading its output as it comes and reporting progress."""
    streams: Dict[str, List[str]] = {"stdout": [], "stderr": []}
    last: List[str] = [""]

    def read(name: str, stream) -> None:
        for line in stream:
            streams[name].append(line)
            if line.strip():
                last[0] = line.strip()

    readers = [
        threading.Thread(target=read, args=(name, getattr(process, name)), daemon=True)
        for name in streams
    ]
    for reader in readers:
        reader.start()
    with Progress(label, process.pid, lambda: last[0]):
        process.wait(timeout=timeout)
    for reader in readers:
        reader.join(timeout=5)
    return "".join(streams["stdout"]), "".join(streams["stderr"])


def group_read_bytes(pgid: int, proc: str = "/proc") -> int:
    """Bytes read (files and sockets: ``rchar``) by the processes of a process group."""
    total = 0
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as stat_file:
                fields = stat_file.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # pgrp
                continue
            with open(f"{proc}/{entry}/io") as io_file:
                for line in io_file:
                    if line.startswith("rchar:"):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total
