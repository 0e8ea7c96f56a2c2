"""The processes a study starts (each run's `sas-trl train` and `sas-trl eval`), stopped with the study.

Each child holds the study folder's lock together with `sas-trl compare` (the lock file stays open in it): the
folder stays locked while any process of the study still writes there, even after `sas-trl compare` itself was
killed, so a re-run cannot train the same run a second time into the same folder. SIGTERM and SIGHUP (what
`kill`, schedulers and a closed terminal send) and Ctrl-C are passed on to every child and the processes it
started (a launcher's workers); what still runs `GRACE` seconds later is killed; only then does `sas-trl
compare` exit and release the lock. The children stay in compare's process group: a signal to the whole group
(a terminal's Ctrl-C, `kill -- -PGID`) reaches them as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

import psutil

GRACE = 30.0  # seconds a child has to stop after the signal before it is killed
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """`sas-trl compare` was told to stop (`signum`); its children are stopped with it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_lock = threading.RLock()
_children: set[subprocess.Popen] = set()
_state: dict = {"stopping": None, "main_busy": False, "pending": [], "lock_file": None, "holder": ""}
_names: dict[subprocess.Popen, str] = {}
_trees: dict[subprocess.Popen, list[psutil.Process]] = {}  # each signalled child's own processes


def running() -> bool:
    """Whether a child of this process may still run."""
    with _lock:
        return any(p.poll() is None for p in _children)


@contextmanager
def sharing_lock(lock_file: IO[str], holder: str) -> Iterator[None]:
    """Children started meanwhile keep `lock_file` (the study's locked file, which says `holder`) open: the lock
    lives as long as they do; the running ones are named in it, so that a refused re-run can name them."""
    _state["lock_file"], _state["holder"] = lock_file, holder
    try:
        yield
    finally:
        _state["lock_file"] = None


def _write_holders() -> None:
    """The lock file: its holder and the children running now (under `_lock`)."""
    lock_file = _state["lock_file"]
    if lock_file is None:
        return
    alive = [f"{_names[p]}: pid {p.pid}" for p in _children if p in _names and p.poll() is None]
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write("; ".join([_state["holder"], *alive]) + "\n")
    lock_file.flush()


def call(command: list[str], stdout: IO, env: dict[str, str] | None, what: str) -> int:
    """`subprocess.call`, with the study's lock file kept open in the child (while `sharing_lock`), and the child
    with the processes under it stopped when this process is told to stop or this thread fails."""
    main = threading.current_thread() is threading.main_thread()
    with _lock:
        if main:
            _state["main_busy"] = True  # a signal now is handled once the child is known
        try:
            if _state["stopping"] is not None:
                raise Stopped(_state["stopping"])
            lock_file = _state["lock_file"]
            process = subprocess.Popen(
                command,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(lock_file.fileno(),) if lock_file is not None else (),
            )
            _children.add(process)
            _names[process] = what
            _write_holders()
        finally:
            if main:
                _state["main_busy"] = False
    try:
        if main and _state["pending"]:
            _on_signal(_state["pending"].pop(0))
        return process.wait()
    except BaseException:
        if _state["stopping"] is None:  # an error or an interrupt of this thread only: the child goes too
            _signal_tree(process, signal.SIGTERM)
        _finish(process)
        raise
    finally:
        with _lock:
            _children.discard(process)
            _names.pop(process, None)
            _write_holders()


@contextmanager
def stopped_on_signals() -> Iterator[None]:
    """While inside: SIGTERM, SIGHUP and SIGINT stop every child (`Stopped` is raised in the main thread); on the
    way out every child has ended. Only from the main thread (where Python runs signal handlers)."""

    def handler(signum, frame):
        if _state["main_busy"]:
            _state["pending"].append(signum)
            return
        _on_signal(signum)

    if threading.current_thread() is not threading.main_thread():  # a library caller's thread: no handlers
        yield
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        with _lock:
            left = set(_children) | set(_trees)  # a child that ended may leave processes of its own
        for process in left:
            _finish(process)
        _state["stopping"] = None
        _state["pending"].clear()


def _on_signal(signum: int) -> None:
    """The first signal: pass it on to every child and raise `Stopped`; a later one kills them at once."""
    with _lock:
        first = _state["stopping"] is None
        if first:
            _state["stopping"] = signum
        for process in list(_children):
            _signal_tree(process, signum if first else signal.SIGKILL)
    if first:
        timer = threading.Timer(GRACE, _kill_all)
        timer.daemon = True
        timer.start()
        raise Stopped(signum)


def _kill_all() -> None:
    with _lock:
        for process in list(_children):
            _signal_tree(process, signal.SIGKILL)


def _signal_tree(process: subprocess.Popen, signum: int) -> None:
    """Send `signum` to a child and every process under it (found now, or at an earlier signal: a process whose
    parent ended is no longer under it)."""
    with _lock:
        tree = _trees.setdefault(process, [])
        if process.poll() is None:  # not reaped yet: its pid is still its own
            with suppress(psutil.Error):
                known = {p.pid for p in tree}
                tree += [p for p in psutil.Process(process.pid).children(recursive=True) if p.pid not in known]
            with suppress(ProcessLookupError):
                os.kill(process.pid, signum)
        for member in tree:
            with suppress(psutil.Error):  # psutil refuses a pid taken over by another process
                member.send_signal(signum)


def _gone(member: psutil.Process) -> bool:
    try:
        return member.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _finish(process: subprocess.Popen) -> None:
    """Wait for a signalled child and the processes under it; kill what runs after `GRACE` seconds."""
    deadline = time.monotonic() + GRACE
    try:
        process.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        _signal_tree(process, signal.SIGKILL)
        process.wait()
    with _lock:
        tree = _trees.pop(process, [])
    if not _wait_gone(tree, deadline):
        for member in tree:
            with suppress(psutil.Error):
                member.kill()
        _wait_gone(tree, time.monotonic() + 5)


def _wait_gone(tree: list[psutil.Process], until: float) -> bool:
    while not all(_gone(m) for m in tree):
        if time.monotonic() > until:
            return False
        time.sleep(0.1)
    return True
