"""Undo journal for the runtime environment: what lets a failed or interrupted install of extra
packages leave the environment exactly as it was.

Why a journal and not a copy: the environment lives in the image's lower overlayfs layer.
Copying it (or even hard-linking it, which copies the file up) costs hundreds of MB and
seconds on every start; renaming it is impossible for the non-root user (``/opt`` is root's)
and would break the absolute paths installers write. Instead, before changing anything:

1. ``listing.json``: one ``lstat`` per path of the environment (type, size, mtime, mode,
   symlink target). Stat-ing does not copy anything up: ~0.2 s for 18,000 paths.
2. ``backup/``: copies of the files the plan says will be removed or replaced (the RECORD
   files of upgraded pip distributions, the ``files`` of unlinked conda packages) and of
   ``conda-meta/`` (installers rewrite it in place). Usually a few kB.
3. The journal directory appears atomically (rename of a temporary directory): from then on
   an interruption of any kind, even SIGKILL, is undone at the next start of the container
   (:func:`recover`).

Rollback walks the environment again, deletes every path the listing does not know,
restores the backed-up files and recreates missing directories and symlinks. A file that was
modified in place although the plan did not announce it cannot be restored: rollback then
names it (:attr:`RollbackReport.unrestorable`) rather than claim success.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from bootstrap.extras.environment import STATE_DIR, state_dir

JOURNAL = "journal"

# relative path -> (kind "f" | "d" | "l", size, mtime_ns, mode, symlink target)
Entry = Tuple[str, int, int, int, str]


def _excluded(prefix: Path) -> str:
    return STATE_DIR.split("/")[0]


def scan(prefix: Path) -> Dict[str, Entry]:
    """lstat every path under ``prefix`` except the state directory."""
    entries: Dict[str, Entry] = {}
    top_excluded = _excluded(prefix)
    root = str(prefix)
    cut = len(root) + 1

    def walk(directory: str) -> None:
        try:
            iterator = os.scandir(directory)
        except FileNotFoundError:
            return
        with iterator:
            for item in iterator:
                relative = item.path[cut:]
                if relative == top_excluded:
                    continue
                info = item.stat(follow_symlinks=False)
                mode = info.st_mode
                if stat.S_ISLNK(mode):
                    entries[relative] = ("l", 0, 0, 0, os.readlink(item.path))
                elif stat.S_ISDIR(mode):
                    entries[relative] = ("d", 0, 0, stat.S_IMODE(mode), "")
                    walk(item.path)
                else:
                    entries[relative] = (
                        "f",
                        info.st_size,
                        info.st_mtime_ns,
                        stat.S_IMODE(mode),
                        "",
                    )

    walk(root)
    return entries


@dataclass
class RollbackReport:
    removed: int = 0
    restored: int = 0
    unrestorable: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.unrestorable

    def describe(self) -> str:
        text = (
            f"removed {self.removed} new path(s), restored {self.restored} in {self.seconds:.2f} s"
        )
        if self.unrestorable:
            shown = ", ".join(self.unrestorable[:10])
            more = f" and {len(self.unrestorable) - 10} more" if len(self.unrestorable) > 10 else ""
            text += f"; could NOT restore {len(self.unrestorable)} file(s): {shown}{more}"
        return text


class Journal:
    """One transaction over the environment at ``prefix``."""

    def __init__(self, prefix: Path):
        self.prefix = prefix
        self.state = state_dir(prefix)
        self.path = self.state / JOURNAL
        self.entries: Dict[str, Entry] = {}
        self.begin_seconds = 0.0

    # -- start ----------------------------------------------------------------------------

    @classmethod
    def begin(cls, prefix: Path, backups: Iterable[Path] = ()) -> Journal:
        """List the environment and open the journal (conda-meta/ is always backed up)."""
        journal = cls(prefix)
        started = time.monotonic()
        journal.state.mkdir(parents=True, exist_ok=True)
        staging = journal.state / (JOURNAL + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "backup").mkdir(parents=True)
        journal.entries = scan(prefix)
        meta = [path for path in journal.entries if path.startswith("conda-meta/")]
        journal._copy(staging / "backup", [prefix / path for path in meta] + list(backups))
        with (staging / "listing.json").open("w") as handle:
            json.dump(journal.entries, handle, separators=(",", ":"))
        os.replace(staging, journal.path)  # the transaction exists from here on
        journal.begin_seconds = time.monotonic() - started
        return journal

    def back_up(self, paths: Iterable[Path]) -> None:
        """Keep copies of files the plan will remove or replace (before it runs)."""
        self._copy(self.path / "backup", paths)

    def _copy(self, backup: Path, paths: Iterable[Path]) -> None:
        for path in paths:
            relative = self._relative(path)
            entry = self.entries.get(relative) if relative is not None else None
            if entry is None or entry[0] == "d" or (backup / relative).exists():
                continue
            target = backup / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.prefix / relative, target, follow_symlinks=False)

    def _relative(self, path: Path) -> Optional[str]:
        try:
            absolute = Path(os.path.normpath(self.prefix / path))
            return str(absolute.relative_to(self.prefix))
        except ValueError:
            return None

    # -- end ------------------------------------------------------------------------------

    def commit(self) -> float:
        """The install succeeded: drop the journal. Returns the seconds it took."""
        started = time.monotonic()
        done = self.state / (JOURNAL + ".done")
        os.replace(self.path, done)
        shutil.rmtree(done, ignore_errors=True)
        return time.monotonic() - started

    @classmethod
    def load(cls, prefix: Path) -> Journal:
        journal = cls(prefix)
        with (journal.path / "listing.json").open() as handle:
            journal.entries = {key: tuple(value) for key, value in json.load(handle).items()}
        return journal

    def rollback(self) -> RollbackReport:
        """Put the environment back as the listing describes it, then drop the journal."""
        started = time.monotonic()
        report = RollbackReport()
        prefix = self.prefix
        backup = self.path / "backup"
        current = scan(prefix)
        # 1. Paths that did not exist before: delete (a new directory with all it holds).
        for relative in sorted(current):
            if relative in self.entries:
                continue
            parent = relative.rsplit("/", 1)[0] if "/" in relative else ""
            if parent and parent not in self.entries:
                continue  # inside a new directory, removed with it
            try:
                _remove(prefix / relative)
                report.removed += 1
            except OSError as exc:
                report.unrestorable.append(f"{relative} (new, {exc.strerror})")
        # 2. Paths that existed: recreate directories, restore files and symlinks.
        for relative in sorted(self.entries):
            try:
                if self._restore(relative, current.get(relative), backup):
                    report.restored += 1
            except _Unrestorable:
                report.unrestorable.append(relative)
            except OSError as exc:
                report.unrestorable.append(f"{relative} ({exc.strerror})")
        shutil.rmtree(self.path, ignore_errors=True)
        for directory in (self.state, self.state.parent):  # leave no trace if none was there
            with contextlib.suppress(OSError):
                directory.rmdir()
        report.seconds = time.monotonic() - started
        return report

    def _restore(self, relative: str, now: Optional[Entry], backup: Path) -> bool:
        """Make one listed path as it was; True if something had to be done."""
        kind, size, mtime_ns, mode, target = self.entries[relative]
        path = self.prefix / relative
        if kind == "d":
            if now is not None and now[0] == "d":
                return False
            if now is not None:
                _remove(path)
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)
            return True
        if kind == "l":
            if now is not None and now[0] == "l" and now[4] == target:
                return False
            if now is not None:
                _remove(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, path)
            return True
        if now is not None and now[0] == "f" and now[1:3] == (size, mtime_ns):
            if now[3] != mode:
                os.chmod(path, mode)
            return False
        saved = backup / relative
        if not (saved.is_file() or saved.is_symlink()):
            raise _Unrestorable(relative)
        if now is not None and now[0] == "d":
            _remove(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(saved, path)
        return True


class _Unrestorable(Exception):
    pass


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def pending(prefix: Path) -> bool:
    """A journal left by an install that did not finish (interrupted, killed)."""
    return (state_dir(prefix) / JOURNAL / "listing.json").is_file()


def clean_leftovers(prefix: Path) -> None:
    for name in (JOURNAL + ".tmp", JOURNAL + ".done"):
        leftover = state_dir(prefix) / name
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def locked(prefix: Path) -> Iterator[None]:
    """One installer at a time per environment (a second bootstrap waits). The lock is held
    on the environment directory itself, so taking it creates nothing."""
    descriptor = os.open(prefix, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock
