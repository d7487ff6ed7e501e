"""Task functions and picklable objects for test_executor_cpython.py.

Derived from CPython's Lib/test/test_concurrent_futures/ (executor.py, test_shutdown.py,
test_process_pool.py, test_init.py, test_deadlock.py): Copyright (c) 2001 Python Software
Foundation, licensed under the Python Software Foundation License Version 2. They live in a
module of their own so that pycrew's local workers import them by reference (tests/ is on
their sys.path), as CPython's workers import the test module.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid

# --- executor.py -----------------------------------------------------------


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


class MyObject:
    def my_method(self):
        pass


def make_dummy_object(_):
    return MyObject()


def raiser(exception, msg="std"):
    raise exception(msg)


def timeout_on_one(x):
    if x == 1:
        raise TimeoutError
    return x


class FalseyBoolException(Exception):
    def __bool__(self):
        return False


class FalseyLenException(Exception):
    def __len__(self):
        return 0


# --- a cross-process Event ---------------------------------------------------
# CPython's process-pool tests use mp_context.Manager().Event(); a manager proxy
# unpickled in a pycrew worker (not a multiprocessing child) has the wrong authkey,
# so the port uses a file: set() creates it, wait() polls for it.


class FileEvent:
    def __init__(self, directory=None):
        directory = directory or tempfile.gettempdir()
        self.path = os.path.join(directory, f"cf-event-{uuid.uuid4().hex}")

    def set(self):
        with open(self.path, "w"):
            pass

    def is_set(self):
        return os.path.exists(self.path)

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not os.path.exists(self.path):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def clear(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def wait_and_raise(e):
    e.wait()
    raise Exception("this is an exception")


def event_wait(e):
    # a bound method e.wait would travel too; a function keeps the call explicit
    return e.wait()


# --- test_shutdown.py --------------------------------------------------------


def sleep_and_write(t, path, msg):
    """CPython's sleep_and_print, but to a file: a pycrew worker's stdout goes to its log."""
    time.sleep(t)
    with open(path, "a") as f:
        f.write(msg)


def failing_task_gh_132969(n):
    raise ValueError("failing task")


def good_task_gh_132969(n):
    time.sleep(0.1 * n)
    return n


def getpid(_=None):
    return os.getpid()


def mul_pid(x, y):
    return x * y, os.getpid()


def wait_then_pid(e):
    e.wait()
    return os.getpid()


def write_pid_then_wait(path, e):
    with open(path + f".{os.getpid()}", "w") as f:
        f.write(str(os.getpid()))
    e.wait()
    return os.getpid()


# --- test_process_pool.py ----------------------------------------------------


def test_traceback_fn():
    raise RuntimeError(123) # some comment


class EventfulGCObj:
    """__del__ leaves a file named after the process it ran in."""

    def __init__(self, path):
        self.path = path

    def __del__(self):
        with open(f"{self.path}.{os.getpid()}", "w"):
            pass


def put_wait_put(path, event):
    with open(path, "a") as f:
        f.write(f"started {os.getpid()}\n")
    event.wait()
    with open(path, "a") as f:
        f.write("finished\n")


def report_wait_return(path, event, value):
    with open(path, "a") as f:
        f.write(f"{value}\n")
    event.wait()
    return value


# --- test_init.py ------------------------------------------------------------

INITIALIZER_STATUS = "uninitialized"


def init(x):
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = x


def get_init_status():
    return INITIALIZER_STATUS


def init_fail(log_queue=None):
    time.sleep(0.1)  # let some futures be scheduled
    raise ValueError("error in initializer")


# --- test_deadlock.py --------------------------------------------------------


def _crash(delay=None):
    """Induces a segfault."""
    if delay:
        time.sleep(delay)
    import faulthandler

    faulthandler.disable()
    faulthandler._sigsegv()


def _crash_with_data(data):
    _crash()


def _exit():
    """Induces a sys exit with exitcode 1."""
    sys.exit(1)


def _raise_error(Err):
    raise Err()


def _raise_error_ignore_stderr(Err):
    import io

    sys.stderr = io.StringIO()
    raise Err()


def _return_instance(cls):
    return cls()


class CrashAtPickle:
    def __reduce__(self):
        _crash()


class CrashAtUnpickle:
    def __reduce__(self):
        return _crash, ()


class ExitAtPickle:
    def __reduce__(self):
        _exit()


class ExitAtUnpickle:
    def __reduce__(self):
        return _exit, ()


class ErrorAtPickle:
    def __reduce__(self):
        from pickle import PicklingError

        raise PicklingError("Error in pickle")


class ErrorAtUnpickle:
    def __reduce__(self):
        from pickle import UnpicklingError

        return _raise_error_ignore_stderr, (UnpicklingError,)
