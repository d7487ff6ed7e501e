"""The ``local`` launcher of pycrew: workers are processes on this machine."""

from pycrew_local.options import LocalOptions
from pycrew_local.processes import LocalHandle

__all__ = ["LocalHandle", "LocalOptions"]
