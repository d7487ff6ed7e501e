"""The ``local`` launcher of pycrew: workers are processes on this machine."""

from pycrew_local.handle import LocalHandle
from pycrew_local.options import LocalOptions

__all__ = ["LocalHandle", "LocalOptions"]
