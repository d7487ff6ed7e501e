"""``python -m pycrew.worker``: see :func:`pycrew.worker.main`."""

import sys

from pycrew.worker import main

sys.exit(main())
