"""pycrew.LauncherPlugin: registration, the options check, the client cache, hook forwarding;
and capability names checked at registration."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

import pycrew
from pycrew.launcher_plugin import options_key
from pycrew.plugins import PluginRegistry


@dataclass(frozen=True)
class EchoOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "echo"
    size: int = 1
    labels: dict[str, str] = field(default_factory=dict)  # a dict: the options value is unhashable


@dataclass(frozen=True)
class OtherOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "other"


class EchoClient:
    """Stands for a platform client: records what it was built from."""

    def __init__(self, options: EchoOptions) -> None:
        self.options = options


class EchoPlugin(pycrew.LauncherPlugin[EchoOptions, EchoClient]):
    """Launches nothing: returns handles naming the client that served each call."""

    name = "echo"
    options_type = EchoOptions
    summary = "answers from its client"
    remote = True
    capabilities = frozenset({"monitor", "never_connected"})
    seconds_exit_margin = 7.0

    def __init__(self) -> None:  # no super().__init__(): the base class must not need it
        self.created: list[EchoOptions] = []
        self.terminated: list[Any] = []

    def create_client(self, options: EchoOptions) -> EchoClient:
        self.created.append(options)
        return EchoClient(options)

    def launch(self, launcher: pycrew.LauncherInfo, options: EchoOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        client = self.client(options)
        return [(launcher.name, id(client), options.size, index) for index, _ in enumerate(calls)]

    def terminate(self, launcher: pycrew.LauncherInfo, options: EchoOptions, handles: Sequence[Any]) -> None:
        self.terminated.extend(handles)

    def list_workers(
        self, launcher: pycrew.LauncherInfo, options: EchoOptions, controller_id: str | None
    ) -> list[pycrew.WorkerInfo]:
        return [pycrew.WorkerInfo(id=str(options.size), handle=options.size, launcher=launcher.name, controller_id=controller_id)]


def registry_with(*plugins: object) -> PluginRegistry:
    reg = PluginRegistry(load_entry_points=False)
    for plugin in plugins:
        reg.register(plugin)
    return reg


# -- registration -------------------------------------------------------------------------


def test_subclass_registers_the_launcher_its_class_attributes_describe() -> None:
    plugin = EchoPlugin()
    reg = registry_with(plugin)
    spec = reg.launcher("echo")
    assert (spec.options_type, spec.summary, spec.remote, spec.seconds_exit_margin) == (EchoOptions, "answers from its client", True, 7.0)
    assert spec.capabilities == frozenset({"monitor", "never_connected"})
    assert spec.plugin is plugin


def test_only_the_pycrew_hooks_of_a_subclass_are_hook_implementations() -> None:
    plugin = EchoPlugin()
    reg = registry_with(plugin)
    hooks = sorted(caller.name for caller in reg.pm.get_hookcallers(plugin) or [])
    assert hooks == [
        "pycrew_cancel_launches", "pycrew_launch_workers", "pycrew_list_workers", "pycrew_register_launchers",
        "pycrew_terminate_workers", "pycrew_worker_logs",
    ]
    for method in ("launch", "terminate", "list_workers", "client", "create_client", "cancel_launches", "launches_cancelled"):
        assert not hasattr(reg.pm.hook, method), f"the method {method!r} became a hook"


def test_missing_name_or_options_type_fails_at_registration_naming_the_class() -> None:
    class Nameless(EchoPlugin):
        name = ""

    class Untyped(EchoPlugin):
        options_type = dict  # type: ignore[assignment]

    with pytest.raises(pycrew.PluginError, match=r"Nameless must set the class attribute 'name'.*got ''"):
        registry_with(Nameless())
    with pytest.raises(pycrew.PluginError, match=r"Untyped \(launcher 'echo'\) must set the class attribute 'options_type'"):
        registry_with(Untyped())


def test_a_subclass_missing_a_method_cannot_be_instantiated() -> None:
    class NoMonitor(pycrew.LauncherPlugin[EchoOptions, None]):
        name = "nomonitor"
        options_type = EchoOptions

        def launch(self, launcher: pycrew.LauncherInfo, options: EchoOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
            return []

        def terminate(self, launcher: pycrew.LauncherInfo, options: EchoOptions, handles: Sequence[Any]) -> None:
            return None

    with pytest.raises(TypeError, match="list_workers"):
        NoMonitor()  # type: ignore[abstract]


def test_registering_the_class_instead_of_an_instance_says_what_to_register() -> None:
    with pytest.raises(pycrew.PluginError, match=r"is the class .*EchoPlugin, not an instance; register an instance \(EchoPlugin\(\)\)"):
        PluginRegistry(load_entry_points=False).register(EchoPlugin)


# -- forwarding and the options check -----------------------------------------------------


def test_hooks_forward_to_the_methods_with_the_checked_options() -> None:
    plugin = EchoPlugin()
    reg = registry_with(plugin)
    spec = reg.launcher("echo")
    options = EchoOptions(size=3)
    info = pycrew.LauncherInfo("echo", options, "ctl", "cid")
    handles = reg.call(spec, "pycrew_launch_workers", launcher=info, calls=[None, None])
    client = plugin.client(options)
    assert handles == [("echo", id(client), 3, 0), ("echo", id(client), 3, 1)]
    reg.call(spec, "pycrew_terminate_workers", launcher=info, handles=handles)
    assert plugin.terminated == handles
    listed = reg.call(spec, "pycrew_list_workers", launcher=info, controller_id="cid")
    assert [(w.id, w.handle, w.launcher, w.controller_id) for w in listed] == [("3", 3, "echo", "cid")]


@pytest.mark.parametrize(
    ("hook", "argument"),
    [("pycrew_launch_workers", {"calls": []}), ("pycrew_terminate_workers", {"handles": []}), ("pycrew_list_workers", {"controller_id": None})],
)
def test_options_of_another_type_raise_options_error_naming_launcher_and_both_types(hook: str, argument: dict[str, Any]) -> None:
    plugin = EchoPlugin()
    reg = registry_with(plugin)
    info = pycrew.LauncherInfo("echo", OtherOptions())
    with pytest.raises(pycrew.OptionsError) as caught:
        reg.call(reg.launcher("echo"), hook, launcher=info, **argument)
    message = str(caught.value)
    assert "launcher 'echo' (EchoPlugin)" in message, message
    assert f"{__name__}.EchoOptions" in message and f"{__name__}.OtherOptions" in message, message
    assert plugin.created == [] and plugin.terminated == [], "nothing may run with options of the wrong type"


def test_an_observer_wrapper_still_sees_the_launches_of_an_adapter_plugin() -> None:
    seen: list[tuple[str, int]] = []

    class Observer:
        @pycrew.hookimpl(wrapper=True)
        def pycrew_launch_workers(self, launcher: pycrew.LauncherInfo, calls: Sequence[Any]) -> Any:
            handles = yield
            seen.append((launcher.name, len(handles)))
            return handles

    reg = registry_with(EchoPlugin(), Observer())
    reg.call(reg.launcher("echo"), "pycrew_launch_workers", launcher=pycrew.LauncherInfo("echo", EchoOptions()), calls=[1, 2])
    assert seen == [("echo", 2)]


# -- the client cache ---------------------------------------------------------------------


def test_equal_options_share_one_client_and_different_options_get_their_own() -> None:
    plugin = EchoPlugin()
    first = plugin.client(EchoOptions(size=1, labels={"a": "1"}))
    again = plugin.client(EchoOptions(size=1, labels={"a": "1"}))  # equal, not the same object
    other = plugin.client(EchoOptions(size=1, labels={"a": "2"}))
    assert first is again and other is not first
    assert [o.labels for o in plugin.created] == [{"a": "1"}, {"a": "2"}]


def test_the_cache_keeps_clients_max_clients_dropping_the_least_recently_used() -> None:
    plugin = EchoPlugin()
    plugin.clients_max = 2
    one, two = plugin.client(EchoOptions(size=1)), plugin.client(EchoOptions(size=2))
    assert plugin.client(EchoOptions(size=1)) is one  # 1 is now the most recently used
    plugin.client(EchoOptions(size=3))  # drops 2
    assert plugin.client(EchoOptions(size=1)) is one
    assert plugin.client(EchoOptions(size=2)) is not two, "the least recently used client should have been dropped"
    assert [o.size for o in plugin.created] == [1, 2, 3, 2]


def test_threads_asking_at_once_get_one_client() -> None:
    plugin = EchoPlugin()
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    got: list[EchoClient] = []
    lock = threading.Lock()

    def ask() -> None:
        barrier.wait(timeout=30)
        client = plugin.client(EchoOptions(size=5, labels={"k": "v"}))
        with lock:
            got.append(client)

    threads = [threading.Thread(target=ask) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == threads_n and len({id(c) for c in got}) == 1, "every thread should get the same client"
    assert len(plugin.created) == 1, f"create_client ran {len(plugin.created)} times for one options value"


def test_client_key_can_add_what_else_a_client_depends_on(monkeypatch: pytest.MonkeyPatch) -> None:
    class PerConfig(EchoPlugin):
        def client_key(self, options: EchoOptions) -> Any:
            return (os.environ.get("ECHO_CONF"), super().client_key(options))

    plugin = PerConfig()
    monkeypatch.setenv("ECHO_CONF", "a")
    a = plugin.client(EchoOptions())
    monkeypatch.setenv("ECHO_CONF", "b")
    assert plugin.client(EchoOptions()) is not a
    monkeypatch.setenv("ECHO_CONF", "a")
    assert plugin.client(EchoOptions()) is a


def test_clear_clients_forgets_them() -> None:
    plugin = EchoPlugin()
    first = plugin.client(EchoOptions())
    plugin.clear_clients()
    assert plugin.client(EchoOptions()) is not first


def test_client_without_create_client_says_what_to_override() -> None:
    class NoClient(pycrew.LauncherPlugin[EchoOptions, None]):
        name = "noclient"
        options_type = EchoOptions

        def launch(self, launcher: pycrew.LauncherInfo, options: EchoOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
            return []

        def terminate(self, launcher: pycrew.LauncherInfo, options: EchoOptions, handles: Sequence[Any]) -> None:
            return None

        def list_workers(
            self, launcher: pycrew.LauncherInfo, options: EchoOptions, controller_id: str | None
        ) -> list[pycrew.WorkerInfo]:
            return []

    with pytest.raises(pycrew.PluginError, match=r"NoClient \(launcher 'noclient'\) calls client\(\) but does not define create_client"):
        NoClient().client(EchoOptions())


def test_options_key_is_equal_for_equal_values_with_dicts_and_lists() -> None:
    assert options_key(EchoOptions(labels={"a": "1", "b": "2"})) == options_key(EchoOptions(labels={"b": "2", "a": "1"}))
    assert options_key(EchoOptions(labels={"a": "1"})) != options_key(EchoOptions(labels={"a": "2"}))
    assert options_key([1, {"x": [2]}]) == options_key([1, {"x": [2]}]) != options_key((1, {"x": [2]}))
    hashable = OtherOptions()
    assert options_key(hashable) is hashable, "hashable options are their own key"


# -- capabilities -------------------------------------------------------------------------


class BareHooks:
    """A plugin written with bare hooks (the low-level way), registering what it is given."""

    def __init__(self, *registrations: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        self.registrations = registrations

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: pycrew.RegisterLauncher) -> None:
        for args, kwargs in self.registrations:
            register(*args, **kwargs)

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: Any, calls: Any) -> list[Any]:
        return []

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: Any, handles: Any) -> None:
        pass


def test_unknown_capability_is_refused_at_registration_listing_the_known_ones() -> None:
    reg = PluginRegistry(load_entry_points=False)
    plugin = BareHooks((("typo", EchoOptions), {"capabilities": {"monitor", "orphan"}}))
    with pytest.raises(pycrew.PluginError) as caught:
        reg.register(plugin, name="typo-plugin")
    message = str(caught.value)
    assert "plugin 'typo-plugin' registered launcher 'typo' with unknown capability 'orphan'" in message, message
    assert "known capabilities: host, monitor, never_connected, orphans, pid" in message, message
    assert not reg.pm.is_registered(plugin)
    with pytest.raises(pycrew.LauncherNotFoundError):
        reg.launcher("typo")


def test_unknown_capability_of_an_adapter_plugin_is_refused() -> None:
    class Remote(EchoPlugin):
        capabilities = frozenset({"remote", "terminate_pending"})

    with pytest.raises(pycrew.PluginError, match=r"unknown capabilities 'remote', 'terminate_pending'; known capabilities"):
        registry_with(Remote())


def test_capabilities_given_as_one_string_are_refused_with_the_fix() -> None:
    plugin = BareHooks((("onestring", EchoOptions), {"capabilities": "monitor"}))
    with pytest.raises(pycrew.PluginError, match=r"capabilities='monitor', a string; .*capabilities=\{'monitor'\}"):
        PluginRegistry(load_entry_points=False).register(plugin)


def test_a_plugin_with_one_bad_launcher_registers_none_of_its_launchers() -> None:
    reg = PluginRegistry(load_entry_points=False)
    plugin = BareHooks((("good", EchoOptions), {"capabilities": {"monitor"}}), (("bad", EchoOptions), {"capabilities": {"gpu"}}))
    with pytest.raises(pycrew.PluginError, match="'gpu'"):
        reg.register(plugin)
    assert reg.installed_launchers() == [], "the good launcher of a refused plugin must not stay registered"


def test_register_spec_with_other_arguments_is_refused() -> None:
    spec = pycrew.LauncherSpec(name="specced", options_type=EchoOptions)
    with pytest.raises(pycrew.PluginError, match=r"register\(spec\) takes no other arguments"):
        PluginRegistry(load_entry_points=False).register(BareHooks(((spec,), {"summary": "x"})))
    assert PluginRegistry(load_entry_points=False).register(BareHooks(((spec,), {})))[0].name == "specced"


def test_capability_names_are_one_list_shared_with_the_conformance_suite() -> None:
    from pycrew.testing import CAPABILITIES

    assert CAPABILITIES is pycrew.LAUNCHER_CAPABILITIES
    assert set(CAPABILITIES) == {"monitor", "pid", "host", "orphans", "never_connected", "shared_files"}


def test_installed_launchers_are_adapter_plugins_with_known_capabilities() -> None:
    """Every installed launcher (entry points): this repository's, the template, the emulators' swarm."""
    reg = PluginRegistry()
    installed = reg.installed_launchers()
    repo = Path(__file__).resolve().parents[3]
    ours = {p.name.removeprefix("launcher-") for p in repo.glob("packages/launcher-*")}
    assert len(ours) >= 8 and ours <= set(installed), f"launcher packages not installed: {sorted(ours - set(installed))}"
    for name in installed:
        spec = reg.launcher(name)
        assert isinstance(spec.plugin, pycrew.LauncherPlugin), f"launcher {name!r} is not built on pycrew.LauncherPlugin"
        unknown = spec.capabilities - set(pycrew.LAUNCHER_CAPABILITIES)
        assert not unknown, f"launcher {name!r} declares unknown capabilities {sorted(unknown)}"


# -- end to end: a LauncherPlugin running real workers ------------------------------------


@dataclass(frozen=True)
class PopenOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "popen"
    env: dict[str, str] = field(default_factory=dict)


class PopenPlugin(pycrew.LauncherPlugin[PopenOptions, None]):
    """Workers are child processes; the handle is the pid."""

    name = "adapter-popen"
    options_type = PopenOptions
    capabilities = frozenset({"pid"})

    def __init__(self) -> None:
        self.children: dict[int, subprocess.Popen[bytes]] = {}  # not terminated yet
        self.started: list[subprocess.Popen[bytes]] = []

    def launch(self, launcher: pycrew.LauncherInfo, options: PopenOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        handles = []
        for call in calls:
            proc = subprocess.Popen(
                call.argv,
                env={**os.environ, **options.env, **call.environment()},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.children[proc.pid] = proc
            self.started.append(proc)
            handles.append(proc.pid)
        return handles

    def terminate(self, launcher: pycrew.LauncherInfo, options: PopenOptions, handles: Sequence[Any]) -> None:
        for pid in handles:
            proc = self.children.pop(pid, None)
            if proc is None:
                continue  # not ours, or terminated before: nothing to do
            if proc.poll() is None:
                os.killpg(pid, signal.SIGTERM)
            proc.wait(timeout=30)

    def list_workers(
        self, launcher: pycrew.LauncherInfo, options: PopenOptions, controller_id: str | None
    ) -> list[pycrew.WorkerInfo]:
        return [
            pycrew.WorkerInfo(id=str(pid), handle=pid, launcher=launcher.name, pid=pid)
            for pid, proc in self.children.items()
            if proc.poll() is None
        ]


@pytest.fixture
def popen_plugin(pycrew_plugin: Callable[..., Any]) -> Iterator[PopenPlugin]:
    plugin = PopenPlugin()
    pycrew_plugin(plugin)
    yield plugin
    for proc in plugin.started:  # a failed test may leave workers: stop them
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_launcher_plugin_runs_tasks_on_real_workers(popen_plugin: PopenPlugin, pycrew_tmp_state_dir: Path) -> None:
    with pycrew.controller("adapter-popen", workers=2, env={"ADAPTER_TEST": "1"}) as c:
        futures = [c.submit(abs, -i) for i in range(6)]
        assert [f.result(timeout=60) for f in futures] == list(range(6))
        assert popen_plugin.started, "the plugin's launch method should have started the workers"
        handles = [slot.handle for slot in c.launcher.slots if slot.handle is not None]
        assert handles and set(handles) <= {p.pid for p in popen_plugin.started}, f"handles {handles} are not the plugin's pids"
    assert popen_plugin.children == {}, "core should have terminated every worker through the plugin's terminate method"
    assert all(proc.poll() is not None for proc in popen_plugin.started), "terminate left workers running"


# -- the address workers dial ----------------------------------------------------------------


class TunnelPlugin(EchoPlugin):
    """A remote launcher that knows where its workers must dial: size picks the loopback address."""

    name = "tunnel"

    def dial_host(self, options: EchoOptions) -> str | None:
        return None if options.size == 0 else f"127.0.0.{options.size}"


def test_a_launcher_suggests_the_address_its_workers_dial_and_host_wins():
    reg = registry_with(TunnelPlugin())
    assert pycrew.Controller("tunnel", registry=reg, size=3).url == "tcp://127.0.0.3:0"
    assert pycrew.Controller("tunnel", registry=reg, size=3, host="127.0.0.9").url == "tcp://127.0.0.9:0"
    # None: core's default for a remote launcher, a routable address of this machine (not 127.0.0.x)
    assert not pycrew.Controller("tunnel", registry=reg, size=0).url.startswith("tcp://127.0.0.3")


def test_bare_hooks_register_dial_host_too():
    class Bare(BareHooks):
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register: Any) -> None:
            register("bare", OtherOptions, dial_host=lambda options: "127.0.0.7")

    reg = registry_with(Bare())
    assert reg.launcher("bare").dial_host is not None
    assert pycrew.Controller("bare", registry=reg).url == "tcp://127.0.0.7:0"


def test_a_failing_or_bad_suggestion_is_a_plugin_error_naming_the_way_out():
    class Broken(TunnelPlugin):
        name = "broken"

        def dial_host(self, options: EchoOptions) -> str | None:
            return "" if options.size == 2 else str(1 / 0)

    reg = registry_with(Broken())
    with pytest.raises(pycrew.PluginError, match=r"failed to suggest .* set the controller option host="):
        pycrew.Controller("broken", registry=reg)
    with pytest.raises(pycrew.PluginError, match="not a host name"):
        pycrew.Controller("broken", registry=reg, size=2)


def test_a_plugin_missing_a_hook_its_launcher_needs_is_told_which() -> None:
    """From a probe of third-party plugins (on ff3635f): a plugin with no launch hook failed
    every launch with "returned None ... fix the launcher's options", and one declaring the
    ``monitor`` capability with no list hook registered and listed nothing."""

    class ListsOnly:
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register: Any) -> None:
            register("listsonly", OtherOptions, capabilities={"monitor"})

        @pycrew.hookimpl
        def pycrew_list_workers(self, launcher: Any, controller_id: Any) -> list[Any]:
            return []

    class NoList(BareHooks):
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register: Any) -> None:
            register("nolist", OtherOptions, capabilities={"monitor"})

    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(pycrew.PluginError, match=r"implements no pycrew_list_workers hook, which its 'monitor' capability"):
        reg.register(NoList())
    reg.register(ListsOnly())
    assert pycrew.Monitor("listsonly", registry=reg).list() == []  # a monitor needs no launch hook
    with pytest.raises(
        pycrew.PluginError,
        match=r"implements no pycrew_launch_workers and no pycrew_terminate_workers hook, which a controller needs",
    ):
        pycrew.Controller("listsonly", registry=reg)
