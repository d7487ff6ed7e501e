"""The launcher conformance suite: crew's plugin-vignette scenarios as tests any plugin inherits.

Use it by subclassing, in the plugin's own tests::

    import pytest
    from pycrew.testing import LauncherConfig, LauncherSuite

    class TestMyLauncher(LauncherSuite):
        @pytest.fixture
        def launcher_config(self) -> LauncherConfig:
            return LauncherConfig(name="mylauncher", options={"queue": "test"},
                                  bad_launch_options={"image": "no/such:image"})

Every test says in its failure message what the launcher got wrong and how to fix it.
Tests that need a capability the launcher does not declare (``LauncherSpec.capabilities``,
see :data:`pycrew.testing.CAPABILITIES`) are skipped with the reason.

The tests live in seven parts (``suite_informal``, ``suite_load``, ``suite_failures``,
``suite_isolation``, ``suite_stopping``, ``suite_setup``, ``suite_files``); their fixtures in ``suite_fixtures``. The launcher hooks they
exercise: ``pycrew_register_launchers`` (discovery), ``pycrew_launch_workers``,
``pycrew_terminate_workers`` and ``pycrew_list_workers`` (every scenario), and the
observer hooks ``pycrew_worker_launched``, ``pycrew_worker_terminated`` and
``pycrew_task_done`` (informal test, batching, asynchrony).
"""

from __future__ import annotations

from pycrew.testing.suite_failures import FailureTests
from pycrew.testing.suite_files import FilesTests
from pycrew.testing.suite_informal import InformalTests
from pycrew.testing.suite_isolation import IsolationTests
from pycrew.testing.suite_load import LoadTests
from pycrew.testing.suite_setup import SetupTests
from pycrew.testing.suite_stopping import StoppingTests


class LauncherSuite(FilesTests, SetupTests, StoppingTests, IsolationTests, FailureTests, LoadTests, InformalTests):
    """Conformance tests for one launcher plugin; subclass it and override ``launcher_config``.

    Fixtures a subclass overrides: ``launcher_config`` (required, a
    :class:`~pycrew.testing.LauncherConfig`), ``bad_launch_options`` (default:
    ``launcher_config.bad_launch_options``) and ``unrelated_job`` (default: none).

    Test methods are numbered after the scenarios: discovery (1), the worker call (2),
    informal test (3), load test (4), batched launch (5), termination (6), launch
    failure (7), crash (8), monitor (9), client death (10), asynchrony (11) and
    authentication (12), cancelling a running task (13), a task timeout (14), the
    controller's initializer (15) and the controller's files on the workers (16); pytest
    runs them in that order.
    """
