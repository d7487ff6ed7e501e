"""Task functions for the tests (importable by workers, since tests/ is on their sys.path)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import warnings
from typing import Any


def whoami() -> tuple[str, int]:
    """The worker's host name and pid."""
    return socket.gethostname(), os.getpid()


def identity(x: object) -> object:
    """Return the argument."""
    return x


def sleep_then(seconds: float, value: object = None) -> object:
    """Sleep, then return ``value``."""
    time.sleep(seconds)
    return value


def crash_first_time(marker: str) -> str:
    """Kill the worker process on the first call (marker file absent); succeed afterwards."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(13)
    return "survived"


def always_crash() -> None:
    """Kill the worker process every time."""
    os._exit(13)


def raise_value_error(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


def warn_and_return(value: object) -> object:
    """Emit a UserWarning, then return ``value``."""
    warnings.warn("careful", UserWarning, stacklevel=1)
    return value


def write_pid_then_sleep(path: str, seconds: float) -> int:
    """Write this worker's pid to ``path``, then sleep."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def write_pid_then_wait_for(path: str, release: str, seconds_max: float) -> int:
    """Write this worker's pid to ``path``, then wait until ``release`` exists (at most ``seconds_max``)."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + seconds_max
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


def unpicklable_result() -> object:
    """Return a value that cannot be pickled."""
    import threading

    return threading.Lock()


def draw() -> float:
    """A draw from Python's global random generator."""
    import random

    return random.random()


def mutate_process_state(tmp: str) -> dict[str, object]:
    """Change os.environ, sys.path and the cwd, then report what the worker had before."""
    import sys

    before = {"env": os.environ.get("PYCREW_TEST_LEAK"), "path": "/leak" in sys.path, "cwd": os.getcwd()}
    os.environ["PYCREW_TEST_LEAK"] = "leaked"
    sys.path.append("/leak")
    os.chdir(tmp)
    return before


def interpreter_settings() -> dict[str, object]:
    """The worker's process-wide interpreter settings (see turn_interpreter_settings)."""
    import gc
    import locale
    import logging
    import socket
    import sys
    import threading

    mask = os.umask(0o022)
    os.umask(mask)
    return {
        "recursion limit": sys.getrecursionlimit(),
        "int digits": sys.get_int_max_str_digits(),
        "trace": sys.gettrace(),
        "profile": sys.getprofile(),
        "thread trace": threading.gettrace(),
        "thread profile": threading.getprofile(),
        "gc": gc.isenabled(),
        "switch interval": sys.getswitchinterval(),
        "logging disabled": logging.root.manager.disable,
        "socket timeout": socket.getdefaulttimeout(),
        "excepthook": sys.excepthook is sys.__excepthook__,
        "thread excepthook": threading.excepthook is threading.__excepthook__,
        "umask": mask,
        "root logger level": logging.root.level,
        "root logger handlers": [type(h).__name__ for h in logging.root.handlers],
        "locale": locale.setlocale(locale.LC_ALL),
        "decimal context": _decimal_context(),
    }


def _decimal_context() -> tuple[object, ...]:
    import decimal

    c = decimal.getcontext()
    return (c.prec, c.rounding, c.Emin, c.Emax, c.capitals, c.clamp, sorted(k.__name__ for k, v in c.traps.items() if v))


def turn_interpreter_settings(setting: str) -> str:
    """Change one process-wide interpreter setting and leave it changed."""
    import gc
    import locale
    import logging
    import socket
    import sys
    import threading

    def hook(*args: object) -> None:
        return None

    change = {
        "recursion limit": lambda: sys.setrecursionlimit(60),
        "int digits": lambda: sys.set_int_max_str_digits(640),
        "trace": lambda: sys.settrace(lambda *a: None),
        "profile": lambda: sys.setprofile(hook),
        "thread trace": lambda: threading.settrace(hook),
        "thread profile": lambda: threading.setprofile(hook),
        "gc": gc.disable,
        "switch interval": lambda: sys.setswitchinterval(0.5),
        "logging disabled": lambda: logging.disable(logging.CRITICAL),
        "socket timeout": lambda: socket.setdefaulttimeout(0.001),
        "excepthook": lambda: setattr(sys, "excepthook", hook),
        "thread excepthook": lambda: setattr(threading, "excepthook", hook),
        "umask": lambda: os.umask(0o777),
        "root logger level": lambda: logging.root.setLevel(logging.DEBUG),
        "root logger handlers": lambda: logging.root.addHandler(logging.StreamHandler()),
        "locale": lambda: locale.setlocale(locale.LC_NUMERIC, "C" if locale.setlocale(locale.LC_NUMERIC) != "C" else "C.UTF-8"),
        "decimal context": _turn_decimal_context,
    }
    change[setting]()
    return setting


def _turn_decimal_context() -> None:
    import decimal

    c = decimal.getcontext()  # changed in place, as code usually does it
    c.prec, c.rounding = 5, decimal.ROUND_DOWN
    c.traps[decimal.Inexact] = True


def leave_and_remove(home: str, elsewhere: str) -> str:
    """Move to ``elsewhere`` and remove ``home`` (the worker's starting directory)."""
    os.chdir(elsewhere)
    os.rmdir(home)
    return os.getcwd()


def busy_loop(seconds: float) -> str:
    """Spin in Python bytecode (interruptible by the worker's signal handler)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


def write_pid_then_spin(path: str, seconds: float) -> int:
    """Write this worker's pid to ``path``, then keep the CPU busy in Python (holding the GIL)."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    busy_loop(seconds)
    return os.getpid()


def write_pid_then_spin_large(path: str, seconds: float) -> bytes:
    """:func:`write_pid_then_spin`, returning 2 MB (a large result)."""
    write_pid_then_spin(path, seconds)
    return b"r" * 2_000_000


def pid_and_draws(delay: float) -> tuple[int, list[float]]:
    """Wait (so that tasks spread over workers), then draw three numbers."""
    import random

    time.sleep(delay)
    return os.getpid(), [random.random() for _ in range(3)]


def crash_until(counter: str, crashes: int) -> int:
    """Kill the worker on the first ``crashes`` calls (counted in a file), then return the call number."""
    from pathlib import Path

    n = int(Path(counter).read_text()) if os.path.exists(counter) else 0
    with open(counter, "w") as f:
        f.write(str(n + 1))
    if n < crashes:
        os._exit(13)
    return n + 1


def unpickles_to_system_exit() -> object:
    """A value that pickles fine on the worker and raises SystemExit when unpickled."""

    class Bomb:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (sys.exit, ("raised while the result unpickled",))

    return Bomb()


def _unpickled_once(release: str) -> str:
    deadline = time.monotonic() + 300
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released"


class _UnpicklesForEver:
    def __init__(self, release: str) -> None:
        self.release = release

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_unpickled_once, (self.release,))


def unpickles_for_ever(release: str) -> object:
    """A value that pickles at once on the worker and whose unpickling, in the controller,
    waits until the file ``release`` exists (a ``__setstate__`` that hangs)."""
    return _UnpicklesForEver(release)


class Blob:
    """A result a test can hold a weak reference to."""

    def __init__(self, n: int) -> None:
        self.data = b"x" * n


def make_blob(n: int) -> Blob:
    """A Blob of ``n`` bytes."""
    return Blob(n)


def mark_after_gate(directory: str, i: int) -> int:
    """Wait until ``directory/gate`` exists, then create ``directory/done-<i>`` and return ``i``."""
    import os
    import time

    while not os.path.exists(os.path.join(directory, "gate")):
        time.sleep(0.01)
    open(os.path.join(directory, f"done-{i}"), "w").close()
    return i


def mark_after_gate_carrying(blob: bytes, directory: str, i: int) -> int:
    """:func:`mark_after_gate`, with a payload of any size along (a task with large arguments)."""
    return mark_after_gate(directory, i)


def first_waits_for_gate(directory: str, i: int) -> int:
    """Item 0 waits until ``directory/gate`` exists; every item creates ``directory/done-<i>``."""
    if i == 0:
        return mark_after_gate(directory, i)
    import os

    open(os.path.join(directory, f"done-{i}"), "w").close()
    return i


class RebuiltAsInt(Exception):
    """An exception whose ``__reduce__`` rebuilds it as an int (a pickled "exception" that is not one)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (int, ("5",))


def raise_rebuilt_as_int() -> None:
    raise RebuiltAsInt("boom")


def own_wakeup_fd_then_sleep(path: str, seconds: float) -> tuple[int, bytes]:
    """Install this task's own signal wakeup descriptor (as an asyncio loop with signal
    handlers does), write the worker's pid to ``path``, sleep in short steps, and return
    the pid and the signal numbers the descriptor received."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write)
    try:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            received = os.read(read, 64)
        except BlockingIOError:
            received = b""
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)
    return os.getpid(), received


def default_signal_handlers() -> int:
    """Put SIGTERM, SIGINT and SIGUSR1 back to their default actions (which end the process)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
    return os.getpid()


def hold_the_gil(seconds: float) -> float:
    """Hold the GIL for ``seconds`` in one call into C code, as a long C extension call does:
    no other thread of the process runs meanwhile. The call is libc's ``nanosleep`` through
    ``ctypes.PyDLL``, which (unlike ``CDLL``) keeps the GIL during the call: it lasts the
    same wall-clock time on a loaded machine, where a CPU-bound call calibrated beforehand
    came out too short when the calibration was the slowed part. Returns how long it took
    (a signal handler may cut the sleep short: it goes on for the rest, the GIL let go
    between the two calls at most)."""
    import ctypes  # here: this module may travel by value, and a ctypes class cannot

    class _Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    libc = ctypes.PyDLL(None)
    start = time.perf_counter()
    whole, fraction = divmod(seconds, 1.0)
    request, left = _Timespec(int(whole), int(fraction * 1e9)), _Timespec()
    while libc.nanosleep(ctypes.byref(request), ctypes.byref(left)) != 0:
        request = _Timespec(left.tv_sec, left.tv_nsec)
    return time.perf_counter() - start


def fork_and_leave(how: str) -> tuple[int, int]:
    """Fork; the child leaves this function by ``how`` ("exit3": ``sys.exit(3)``, "return",
    "raise") instead of ending itself; the parent waits for it: (its exit code, parent pid)."""
    pid = os.fork()
    if pid == 0:
        if how == "exit3":
            sys.exit(3)
        if how == "raise":
            raise ValueError("raised by the forked child")
        return (-1, os.getpid())
    _, status = os.waitpid(pid, 0)
    return (os.waitstatus_to_exitcode(status), os.getpid())


def fork_then_terminate_the_child(seconds: float) -> tuple[int | None, int]:
    """Start a multiprocessing "fork" child that sleeps, SIGTERM it (as ``Pool`` ends its
    processes), wait for it: (its exit code, this process's pid)."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(seconds,))
    child.start()
    time.sleep(0.3)  # the child runs its target by now
    child.terminate()
    child.join(seconds + 30)
    return (child.exitcode, os.getpid())


def break_the_standard_streams(how: str, path: str) -> str:
    """Leave the worker's standard streams broken: "replace" points ``sys.stdout`` and
    ``sys.stderr`` at a file and never puts them back, "close" closes both."""
    if how == "replace":
        sys.stdout = sys.stderr = open(path, "w")  # noqa: SIM115 (left open on purpose)
    else:
        sys.stdout.close()
        sys.stderr.close()
    return how


def print_and_log(text: str) -> str:
    """Print ``text`` to stdout and stderr, and log it through the root logger (the worker's log)."""
    import logging

    print(f"{text} on stdout", flush=True)
    print(f"{text} on stderr", file=sys.stderr, flush=True)
    logging.getLogger().error("%s logged", text)
    return text


def mock_the_serializers() -> str:
    """Task: replace pickle's and json's functions for good, as a test's mock.patch left
    running does (the replacements return garbage)."""
    import json
    import pickle

    pickle.dumps = lambda *args, **kwargs: b"garbage"
    pickle.loads = lambda *args, **kwargs: None
    json.dumps = lambda *args, **kwargs: "garbage"
    json.loads = lambda *args, **kwargs: None
    return "mocked"


def stop_the_clocks() -> int:
    """Task: stop time in this worker process for good, as a test's freezegun left running
    does: ``time.monotonic``/``time``/``perf_counter`` and every module attribute that is
    one of them (but in threading, multiprocessing and queue, which freezegun skips) now
    return constants. Returns the worker's pid."""
    real = {
        id(time.monotonic): lambda: 1000.0,
        id(time.time): lambda: 1.0e9,
        id(time.perf_counter): lambda: 10.0,
    }
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in ("threading", "multiprocessing", "queue"):
            continue
        try:
            attributes = list(vars(module).items())
        except TypeError:
            continue
        for attribute, value in attributes:
            fake = real.get(id(value))
            if fake is not None:
                setattr(module, attribute, fake)
    return os.getpid()


def leave_a_timer_running(kind: str) -> int:
    """Task: start an interval timer and return without cancelling it; the worker's pid."""
    if kind == "alarm":
        signal.alarm(1)
    elif kind == "repeating":
        signal.setitimer(signal.ITIMER_REAL, 0.3, 0.2)
    else:  # "profiler": as a sampling profiler left on would
        signal.setitimer(signal.ITIMER_PROF, 0.05, 0.05)
    return os.getpid()


def catch_own_alarm(seconds: float) -> int:
    """Task: count the SIGALRMs of a timer it starts, with its own handler, over ``seconds``."""
    fired: list[int] = []
    signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    signal.setitimer(signal.ITIMER_REAL, 0)
    return len(fired)


# -- worker initializers (the controller's initializer option) ---------------------------

MODEL: object = None
LOADED: dict[str, object] = {}


def load_model(path: str, directory: str) -> None:
    """Initializer: set a global and mutate a global dict (this module travels by value, as a
    script's functions do), set an environment variable and an interpreter setting, and add
    a line to ``directory/init-<pid>`` (one line per run in that process)."""
    global MODEL
    MODEL = ("model", path, os.getpid())
    LOADED["path"] = path
    os.environ["PYCREW_TEST_INITIALIZED"] = path
    sys.setrecursionlimit(4321)
    with open(os.path.join(directory, f"init-{os.getpid()}"), "a") as f:
        f.write(path + "\n")


def use_model(x: object) -> tuple[object, ...]:
    """Task: what the initializer left, as this task sees it (then it changes the environment)."""
    seen = (MODEL, dict(LOADED), os.environ.get("PYCREW_TEST_INITIALIZED"), sys.getrecursionlimit(), os.getpid(), x)
    os.environ["PYCREW_TEST_INITIALIZED"] = "changed by a task"
    sys.setrecursionlimit(999)
    return seen


def block_interrupts_then_sleep(seconds: float) -> None:
    """Initializer: replace and block the worker's interrupt signal (SIGUSR1), then sleep."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    time.sleep(seconds)


def print_then_exit(code: int, text: str) -> None:
    """Initializer: print ``text`` and end the process at once with ``code``."""
    print(text, flush=True)
    os._exit(code)


def start_processes_then_sleep(path: str, seconds: float) -> int:
    """Task: start two ``sleep`` processes and a shell with a ``sleep`` of its own (a grandchild),
    write their pids to ``path``, then sleep ``seconds``; the worker's pid."""
    import subprocess

    children = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
    shell = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    assert shell.stdout is not None
    grandchild = int(shell.stdout.readline())
    with open(path, "w") as f:
        f.write(" ".join(str(pid) for pid in [*(c.pid for c in children), shell.pid, grandchild]))
    time.sleep(seconds)
    return os.getpid()


def start_a_server(path: str) -> int:
    """Task: start a long-lived process on purpose (a server later tasks use) and return; it writes its pid to ``path``."""
    import subprocess

    server = subprocess.Popen(["sleep", "300"])
    with open(path, "w") as f:
        f.write(str(server.pid))
    return os.getpid()


def crash_unless_big(seconds: float, value: object = None) -> object:
    """Kill the worker unless ``MEMORY=big`` is in its environment (a backup's), then sleep and return ``value``."""
    if os.environ.get("MEMORY") != "big":
        os._exit(137)
    time.sleep(seconds)
    return value


class FalseyError(Exception):
    """An exception whose truth value is false (CPython's gh-132063)."""

    def __bool__(self) -> bool:
        return False


def raise_falsey(message: str) -> None:
    """Raise :class:`FalseyError` (``bool()`` of it is False)."""
    raise FalseyError(message)


def raise_memory_error() -> None:
    """Raise MemoryError with no message, as an allocation over a job's memory limit does."""
    raise MemoryError()


def fail_at(x: int, bad: int, seconds: float = 0.0) -> int:
    """Raise ValueError for ``x == bad``; else sleep ``seconds`` and return ``x``."""
    if x == bad:
        raise ValueError(f"item {x} is bad")
    time.sleep(seconds)
    return x


def print_then_kill(text: str) -> None:
    """Print ``text``, then kill the worker process with SIGKILL (as an out-of-memory killer does)."""
    print(text, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def kill_worker_if_in(x: int, killers: frozenset[int]) -> int:
    """Kill the worker process (SIGKILL) if ``x`` is one of ``killers``; else return ``x``."""
    if x in killers:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def hog(n: int) -> int:
    """One call into C code that holds the GIL and computes for a while (``sum(range(n))``)."""
    return sum(range(n))


_libc: list[object] = []


def hold_gil(seconds: float) -> str:
    """One call into C code that holds the GIL for ``seconds`` (libc's usleep through
    ctypes.PyDLL): no other thread of the worker runs meanwhile, so none can send a result.
    The first call also imports ctypes (milliseconds of Python code before the C call)."""
    if not _libc:
        import ctypes

        _libc.append(ctypes.PyDLL(None).usleep)
    usleep: Any = _libc[0]
    usleep(int(seconds * 1e6))
    return "held"


def ignore_interrupts(seconds: float) -> str:
    """Sleep ``seconds`` in short naps, swallowing every exception (the worker's interrupt too)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return "done"


def big_result(megabytes: int) -> bytes:
    """A result of ``megabytes`` MiB (sending it takes a while)."""
    return b"x" * (megabytes << 20)


def ignore_interrupts_then_raise(seconds: float) -> None:
    """Swallow every exception (the worker's interrupt too) for ``seconds``, then raise ValueError."""
    ignore_interrupts(seconds)
    raise ValueError("raised late")


def fail_first_launches(path: str, failures: int) -> None:
    """Initializer: raise in the first ``failures`` workers that run it (counted in ``path``)."""
    with open(path, "a+") as f:
        f.seek(0)
        count = len(f.read()) + 1
        f.write("x")
    if count <= failures:
        raise RuntimeError(f"launch {count} fails on purpose")


class TwoArgumentError(Exception):
    """An exception whose ``__init__`` takes other arguments than its ``args`` (plain pickle
    cannot rebuild it: ``TypeError: missing 1 required positional argument``)."""

    def __init__(self, path: str, line: int) -> None:
        super().__init__(f"{path}:{line}: bad")
        self.path, self.line = path, line


class KeywordOnlyError(Exception):
    """An exception built with a keyword-only argument."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


class OwnNewError(Exception):
    """An exception with a ``__new__`` of its own that takes other arguments than its ``args``."""

    def __new__(cls, first: str, second: str) -> OwnNewError:
        return super().__new__(cls, first + second)

    def __init__(self, first: str, second: str) -> None:
        super().__init__(first + second)


class LockHoldingError(Exception):
    """A two-argument exception that holds a lock: it travels neither way (its text does)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(a + b)
        self.lock = threading.Lock()


def raise_built(kind: str) -> None:
    """Raise one of the exceptions above, by name."""
    if kind == "two":
        raise TwoArgumentError("setup.cfg", 7)
    if kind == "keyword":
        raise KeywordOnlyError(code=3)
    if kind == "new":
        raise OwnNewError("ab", "cd")
    raise LockHoldingError(1, 2)


class StrRaisesItself(Exception):
    """An exception whose ``__str__`` raises one of its own kind (so does that one's)."""

    def __str__(self) -> str:
        raise StrRaisesItself()


def _raise_str_raises_itself() -> None:
    raise StrRaisesItself()


class UnpicklesIntoABrokenError:
    """A result whose unpickling (on the controller) raises :class:`StrRaisesItself`."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_raise_str_raises_itself, ())


def result_unpickling_into_a_broken_error() -> UnpicklesIntoABrokenError:
    return UnpicklesIntoABrokenError()
