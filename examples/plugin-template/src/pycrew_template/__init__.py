"""``template``: an example pycrew launcher plugin to copy when writing your own.

Workers are processes on this machine, started through ``/bin/sh`` in the background;
the shell writes each worker's pid to a pid file, and a small JSON record per worker in
the run directory is what the monitor reads.
"""

from pycrew_template.options import TemplateOptions
from pycrew_template.workers import TemplateHandle

__all__ = ["TemplateHandle", "TemplateOptions"]
