"""A deadline for the user's own rewards (dotted-path reward functions), as the built-in grader has one.

A reward that never returns would hang training without a word. `with_deadline` wraps a reward so that a call
that runs past `seconds` fails, naming the reward and its deadline (recipe key `reward_timeout`):

- the call runs where TRL makes it (no subprocess, nothing copied); a `threading.Timer` is its watchdog, so a
  call that returns in time costs only starting and cancelling that timer;
- at the deadline the watchdog says which reward overran and raises `RewardTimeoutError` (a `UserError`: one line,
  exit 2) in the thread running it, which Python code (a loop, a retry) receives at once;
- a call stuck where no exception reaches (a blocking read without a timeout, C code) gets `STUCK_GRACE_S` more
  seconds, then the process exits with that message: a hang is never silent;
- an `async def` reward (TRL runs those on its event loop) is awaited under `asyncio.wait_for`, with the same
  watchdog behind it for a coroutine that blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..errors import UserError

DEFAULT_REWARD_TIMEOUT = 300.0  # seconds per call (one batch of completions); recipe key `reward_timeout`
STUCK_GRACE_S = 30.0  # after the deadline, how long a call that no exception reaches may still run
STUCK_EXIT_CODE = 2  # the exit code of user errors


class RewardTimeoutError(UserError):
    """A reward call ran past its deadline."""

    message = "a reward ran past its deadline"

    def __init__(self, *args):
        super().__init__(*(args or (self.message,)))


def overrun_message(name: str, seconds: float) -> str:
    return (
        f"reward {name!r} did not return within its deadline of {seconds:g} s (reward_timeout: {seconds:g}); a "
        "reward function must return one float per completion. Fix or speed up the function, or raise "
        "reward_timeout in the recipe"
    )


def with_deadline(reward: Callable, name: str, seconds: float | None) -> Callable:
    """`reward`, failing with a message naming `name` and the deadline when a call runs past `seconds`.

    The wrapper keeps the reward's name and attributes (TRL's metric names, `sas_correctness`). `seconds` None:
    `reward` itself, unwrapped.
    """
    if seconds is None:
        return reward
    message = overrun_message(name, seconds)

    if _is_async(reward):

        @functools.wraps(reward)
        async def async_wrapper(*args: Any, **kwargs: Any):
            watch = _Watchdog(message, seconds, thread_id=None)  # never interrupts the event loop's thread
            try:
                return await asyncio.wait_for(reward(*args, **kwargs), seconds)
            except TimeoutError:
                raise RewardTimeoutError(message) from None
            finally:
                watch.stop()

        wrapper: Callable = async_wrapper
    else:

        @functools.wraps(reward)
        def sync_wrapper(*args: Any, **kwargs: Any):
            watch = _Watchdog(message, seconds, threading.get_ident())
            try:
                return reward(*args, **kwargs)
            finally:
                watch.stop()

        wrapper = sync_wrapper
    if not hasattr(reward, "__name__"):  # a callable object: TRL names it by its class
        wrapper.__name__ = type(reward).__name__
    wrapper.reward_timeout = seconds
    return wrapper


def _is_async(reward: Callable) -> bool:
    import inspect

    while isinstance(reward, functools.partial):
        reward = reward.func
    return inspect.iscoroutinefunction(reward) or inspect.iscoroutinefunction(type(reward).__call__)


class _Watchdog:
    """Two timers for one call: at `seconds` it tells and (given a thread) raises `RewardTimeoutError` there;
    `STUCK_GRACE_S` later, if the call has neither returned nor received that error, it ends the process."""

    def __init__(self, message: str, seconds: float, thread_id: int | None):
        self.message, self.thread_id = message, thread_id
        self.lock = threading.Lock()
        self.returned = self.delivered = False
        self.stuck: threading.Timer | None = None
        self.timer = self._start(seconds, self._overrun)

    @staticmethod
    def _start(seconds: float, action: Callable[[], None]) -> threading.Timer:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        timer.start()
        return timer

    def stop(self) -> None:
        with self.lock:
            self.returned = True
            self.timer.cancel()
            if self.stuck is not None:
                self.stuck.cancel()

    def _overrun(self) -> None:
        watchdog = self

        class Overrun(RewardTimeoutError):  # raised in the reward's thread: it carries the message with it
            message = self.message

            def __init__(self, *args):
                watchdog.delivered = True  # the error is out: no need to end the process
                super().__init__(*args)

        with self.lock:
            if self.returned:
                return
            self.stuck = self._start(STUCK_GRACE_S, self._exit)
            _tell(f"sas-trl: error: {self.message}; stopping it")
            if self.thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), ctypes.py_object(Overrun))

    def _exit(self) -> None:
        with self.lock:
            if self.returned or self.delivered:
                return
        _tell(
            f"sas-trl: error: {self.message}. It is still running {STUCK_GRACE_S:g} s later, where it cannot be "
            "interrupted (a blocking call without a timeout, or C code); exiting. Checkpoints saved so far are kept"
        )
        os._exit(STUCK_EXIT_CODE)


def _tell(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed stream must not keep the watchdog from acting
        print(line, file=sys.stderr, flush=True)
