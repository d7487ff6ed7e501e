"""The plugin system: registration, validation, routing, allow/block lists."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest
from distributions import write_distribution

import pycrew
from pycrew import plugins
from pycrew.errors import PluginError
from pycrew.plugins import PluginRegistry


@dataclass(frozen=True)
class DummyOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "dummy"
    size: int = 1


class Dummy:
    """A launcher that records calls instead of starting workers."""

    def __init__(self, name: str = "dummy", remote: bool = False) -> None:
        self.name = name
        self.remote = remote
        self.launched: list[int] = []
        self.terminated: list[object] = []

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register):
        register(self.name, DummyOptions, summary="records calls", remote=self.remote)

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher, calls):
        self.launched.append(len(calls))
        return [f"{self.name}-{c.worker}" for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher, handles):
        self.terminated.extend(handles)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher, controller_id):
        return []


def test_register_and_route_only_to_the_chosen_launcher():
    reg = PluginRegistry(load_entry_points=False)
    a, b = Dummy("a"), Dummy("b")
    reg.register(a)
    reg.register(b)
    spec = reg.launcher("b")
    info = pycrew.LauncherInfo("b", DummyOptions())
    handles = reg.call(spec, "pycrew_launch_workers", launcher=info, calls=[])
    assert handles == [] and b.launched == [0] and a.launched == []


def test_observer_wrapper_sees_every_launch():
    reg = PluginRegistry(load_entry_points=False)
    seen: list[str] = []

    class Observer:
        @pycrew.hookimpl(wrapper=True)
        def pycrew_launch_workers(self, launcher, calls):
            seen.append(launcher.name)
            return (yield)

    reg.register(Dummy("a"))
    reg.register(Observer())
    reg.call(reg.launcher("a"), "pycrew_launch_workers", launcher=pycrew.LauncherInfo("a", DummyOptions()), calls=[])
    assert seen == ["a"]


def test_bad_hook_signature_fails_at_load_naming_plugin_and_hook():
    class Bad:
        @pycrew.hookimpl
        def pycrew_launch_workers(self, launcher, calls, extra):
            return []

    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(pycrew.PluginError, match=r"'bad-plugin'.*pycrew_launch_workers"):
        reg.register(Bad(), name="bad-plugin")


def test_misspelt_hook_fails_at_load():
    class Typo:
        @pycrew.hookimpl
        def pycrew_lauch_workers(self, launcher, calls):
            return []

    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(pycrew.PluginError, match="pycrew_lauch_workers"):
        reg.register(Typo(), name="typo")


def test_duplicate_launcher_name_is_an_error():
    reg = PluginRegistry(load_entry_points=False)
    reg.register(Dummy("x"))
    with pytest.raises(pycrew.PluginError, match="registered twice"):
        reg.register(Dummy("x"))


def test_launcher_options_may_not_shadow_controller_options():
    """A launcher option named like a controller option could never be set: refused at load."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Shadowing(pycrew.LauncherOptions):
        wire: str = "rest"
        region: str = "x"

    class Plugin:
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register):
            register("shadow", Shadowing)

    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(pycrew.PluginError, match=r"'shadow' whose options 'wire' are also controller options"):
        reg.register(Plugin(), name="shadow-plugin")
    with pytest.raises(pycrew.LauncherNotFoundError):
        reg.launcher("shadow")


def test_installed_launchers_do_not_shadow_controller_options():
    reg = PluginRegistry()
    for name in ("local", "slurm", "k8s", "cloudrun", "awsbatch"):
        reg.launcher(name)  # loading checks the options


def test_options_type_must_derive_from_launcher_options():
    class NoOptions:
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register):
            register("bad", dict)

    with pytest.raises(pycrew.PluginError, match=r"subclass of pycrew\.LauncherOptions"):
        PluginRegistry(load_entry_points=False).register(NoOptions())


def test_local_launcher_is_found_through_its_entry_point():
    reg = PluginRegistry()
    assert "local" in reg.installed_launchers()
    spec = reg.launcher("local")
    assert spec.distribution == "pycrew-local" and spec.version


def test_block_list_hides_a_launcher(monkeypatch):
    monkeypatch.setenv("PYCREW_BLOCK_PLUGINS", "local")
    reg = PluginRegistry()
    assert "local" not in reg.installed_launchers()
    with pytest.raises(pycrew.LauncherNotFoundError, match="installed but not loaded") as raised:
        reg.launcher("local")
    assert "take it out of PYCREW_BLOCK_PLUGINS" in str(raised.value) and "pip install" not in str(raised.value)


def test_a_blocked_launcher_asked_for_by_name_says_so_and_a_name_in_another_case_is_suggested(monkeypatch):
    """On fce425b ``controller("local")`` with local blocked said only: install it (the
    reason was dropped by the profile lookup), and ``controller("LOCAL")`` suggested nothing."""
    monkeypatch.setenv("PYCREW_BLOCK_PLUGINS", "local")
    monkeypatch.setattr(plugins, "_registry", None)
    with pytest.raises(pycrew.LauncherNotFoundError, match="installed but not loaded"):
        pycrew.controller("local")
    monkeypatch.delenv("PYCREW_BLOCK_PLUGINS")
    monkeypatch.setattr(plugins, "_registry", None)
    with pytest.raises(pycrew.LauncherNotFoundError, match=r"'LOCAL' \(did you mean 'local'\?\)"):
        pycrew.controller("LOCAL")


@pytest.mark.parametrize("var", ["PYCREW_BLOCK_PLUGINS", "PYCREW_PLUGINS"])
def test_a_mistyped_plugin_name_in_the_environment_is_logged_when_the_registry_is_built(monkeypatch, caplog, var):
    """On 3287680 only ``pycrew launchers`` and a launcher not found said so: a mistyped block
    list blocked nothing, without a word."""
    monkeypatch.setenv(var, "locla")
    monkeypatch.setattr(plugins, "_registry", None)
    with caplog.at_level(logging.WARNING, logger="pycrew.plugins"):
        plugins.get_registry()
        plugins.get_registry()
    assert caplog.text.count(f"{var} names 'locla', which no installed plugin is (did you mean 'local'?)") == 1, caplog.text
    monkeypatch.setenv(var, "local")
    monkeypatch.setattr(plugins, "_registry", None)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pycrew.plugins"):
        plugins.get_registry()
    assert caplog.text == "", "a deliberate list is not warned about"


def test_allow_list_loads_only_named_plugins(monkeypatch):
    monkeypatch.setenv("PYCREW_PLUGINS", "")
    reg = PluginRegistry()
    assert reg.installed_launchers() == []
    monkeypatch.setenv("PYCREW_PLUGINS", "local")
    assert PluginRegistry().installed_launchers() == ["local"]


def test_unknown_launcher_message():
    reg = PluginRegistry(load_entry_points=False)
    reg.register(Dummy("a"))
    with pytest.raises(pycrew.LauncherNotFoundError, match=r"no launcher named 'k8s'; installed: a\. To add it: pip install \"pycrew\[k8s\]\""):
        reg.launcher("k8s")


class SlowToPickle:
    """An argument that takes 2 ms to pickle, as large data would."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        time.sleep(0.002)
        return (SlowToPickle, ())


@pytest.mark.parametrize("remote", [True, False])
def test_a_slowly_pickling_loop_of_pushes_is_one_batch_of_launches_for_a_remote_launcher(remote):
    """20 pushes of 2 ms each (40 ms): a remote launcher's demand window stays open while
    pushes keep coming, so they become one launch call (one job array); a local launcher
    scales out 5 ms after the first, as before, and then again as more come."""
    reg = PluginRegistry(load_entry_points=False)
    dummy = Dummy("r", remote=remote)
    reg.register(dummy)
    c = pycrew.Controller("r", workers=20, registry=reg, seconds_launch=30, workers_at_start=0, host="127.0.0.1")
    try:
        c.start()
        for _ in range(20):
            c.push(abs, (SlowToPickle(),))
        deadline = time.monotonic() + 10
        while sum(dummy.launched) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sum(dummy.launched) == 20, dummy.launched
        if remote:
            # One call; two if a busy machine paused the loop for over 5 ms once.
            assert len(dummy.launched) <= 2, f"the loop became {len(dummy.launched)} launch calls: {dummy.launched}"
        else:
            assert len(dummy.launched) > 2, f"a local launcher scales out as the pushes come: {dummy.launched}"
    finally:
        c.terminate()


def test_controller_with_a_registered_launcher_batches_its_launches():
    reg = PluginRegistry(load_entry_points=False)
    dummy = Dummy("d")
    reg.register(dummy)
    c = pycrew.Controller("d", workers=3, registry=reg, seconds_launch=30, workers_at_start=0)
    try:
        c.start()
        for i in range(5):
            c.push(abs, (i,))
        deadline = __import__("time").monotonic() + 10
        while not dummy.launched and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.02)
        assert dummy.launched == [3], "demand for 3 workers must be one batched hook call"
    finally:
        c.terminate()
    assert sorted(dummy.terminated) == ["d-1", "d-2", "d-3"], "terminate() must reach never-connected workers"


def test_options_are_type_checked():
    with pytest.raises(pycrew.OptionsError, match="dummy option 'size' must be int, got 'x'"):
        DummyOptions(size="x")  # type: ignore[arg-type]
    with pytest.raises(pycrew.OptionsError, match="unknown dummy option"):
        DummyOptions.from_mapping({"sise": 1})


def test_launch_timeout_error_carries_the_platforms_reason():
    class Stuck(Dummy):
        def __init__(self) -> None:
            super().__init__("stuck")
            self.calls: list[pycrew.WorkerCall] = []

        @pycrew.hookimpl
        def pycrew_launch_workers(self, launcher, calls):
            self.calls.extend(calls)
            return [c.instance for c in calls]

        @pycrew.hookimpl
        def pycrew_list_workers(self, launcher, controller_id):
            return [
                pycrew.WorkerInfo(id=c.instance, handle=c.instance, launcher="stuck", controller_id=controller_id,
                                  instance=c.instance, state="Pending", reason="ImagePullBackOff: no/such:image")
                for c in self.calls
                if c.instance not in self.terminated
            ]

    reg = PluginRegistry(load_entry_points=False)
    stuck = Stuck()
    reg.register(stuck)
    c = pycrew.Controller("stuck", workers=1, registry=reg, seconds_launch=0.3, launch_max=1)
    try:
        c.start()
        c.push(abs, (1,))
        with pytest.raises(pycrew.LaunchError, match=r"the platform reports the worker as Pending: ImagePullBackOff"):
            c.wait(timeout=30)
    finally:
        c.terminate()
    assert stuck.terminated == [stuck.calls[0].instance], "the stuck worker must be terminated after it was described"


def test_an_entry_point_to_a_module_whose_hooks_are_methods_suggests_module_object(tmp_path, monkeypatch):
    """The plugin guide's mistake: the entry point names the module, the hooks live on an instance in it."""
    (tmp_path / "instance_hooks_plugin.py").write_text(
        "import pycrew\n"
        "class Hooks:\n"
        "    @pycrew.hookimpl\n"
        "    def pycrew_register_launchers(self, register):\n"
        "        register('instancehooks', pycrew.LauncherOptions)\n"
        "    @pycrew.hookimpl\n"
        "    def pycrew_launch_workers(self, launcher, calls):\n"
        "        return []\n"
        "    @pycrew.hookimpl\n"
        "    def pycrew_terminate_workers(self, launcher, handles):\n"
        "        pass\n"
        "plugin = Hooks()\n"
    )
    dist = write_distribution(tmp_path, "instance-hooks-plugin", "[pycrew.launchers]\ninstancehooks = instance_hooks_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = PluginRegistry()
    with pytest.raises(PluginError, match=r'instancehooks = "instance_hooks_plugin:plugin"'):
        reg.launcher("instancehooks")
    (dist / "entry_points.txt").write_text("[pycrew.launchers]\ninstancehooks = instance_hooks_plugin:plugin\n")
    assert PluginRegistry().launcher("instancehooks").name == "instancehooks"


def test_a_plugin_that_calls_sys_exit_is_a_plugin_error_naming_it_not_the_end_of_the_program(tmp_path, monkeypatch):
    """A broken third-party plugin (sys.exit at import, or in its registration) must not end
    the user's program, whichever launcher it chose: it gets the PluginError that says how to skip it."""
    write_distribution(
        tmp_path, "exiting-plugin", "[pycrew.launchers]\nexiting = exiting_plugin:plugin\n",
        {"exiting_plugin": "import sys\nsys.exit('exiting_plugin: missing configuration')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"'exiting' .* failed to import: SystemExit: exiting_plugin: missing configuration"):
        PluginRegistry().launcher("exiting")

    class ExitsInRegistration:
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register):
            raise SystemExit(2)

    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(PluginError, match="failed in pycrew_register_launchers: SystemExit: 2"):
        reg.register(ExitsInRegistration(), name="exits-in-registration")
    reg.register(Dummy("after"))  # the registry still works
    assert reg.launcher("after").name == "after"


def test_a_broken_observer_plugin_is_logged_and_left_out_not_the_end_of_every_launcher(tmp_path, monkeypatch, caplog):
    """An observer (group pycrew.plugins) that failed to import made every PluginRegistry
    raise: `pycrew launchers`, every controller and monitor failed (a probe, on 6037642).
    It is now left out with an error naming its distribution."""
    write_distribution(
        tmp_path, "badobs-plugin", "[pycrew.plugins]\nbadobs = badobs_plugin:plugin\n",
        {"badobs_plugin": "import no_such_module_for_badobs\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level("ERROR", logger="pycrew.plugins"):
        reg = PluginRegistry()
    assert reg.launcher("local").name == "local"
    [broken] = reg.broken
    assert "'badobs'" in broken and "badobs-plugin 0.1" in broken and "ModuleNotFoundError" in broken, broken
    assert "PYCREW_BLOCK_PLUGINS=badobs" in broken and "goes on without it" in caplog.text
