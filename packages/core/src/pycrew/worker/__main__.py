"""``python -m pycrew.worker``: see :func:`pycrew.worker.main` and :func:`pycrew.worker.exit_process`."""

from pycrew.worker import exit_process, main

exit_process(main())
