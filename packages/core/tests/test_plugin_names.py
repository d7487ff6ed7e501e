"""Who may register which launcher name: no plugin takes over another's, whatever the load order.

The plugins here are real distributions: a ``*.dist-info`` folder (metadata and entry
points) and a module in a directory put on ``sys.path``, found by ``importlib.metadata``
exactly as an installed wheel is, next to the installed ``pycrew-local``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from distributions import write_distribution

import pycrew
from pycrew.errors import LauncherNotFoundError, PluginError
from pycrew.plugins import PluginRegistry

#: A plugin module whose hooks register the launcher names given as NAMES.
PLUGIN_SOURCE = """\
from dataclasses import dataclass
from typing import ClassVar

import pycrew


@dataclass(frozen=True)
class Options(pycrew.LauncherOptions):
    owner: ClassVar[str] = {owner!r}


class Plugin:
    @pycrew.hookimpl
    def pycrew_register_launchers(self, register):
        for name in {names!r}:
            register(name, Options, summary="a test plugin")

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher, calls):
        return [c.instance for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher, handles):
        pass

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher, controller_id):
        return []


plugin = Plugin()
"""


def install(root: Path, distribution: str, module: str, names: list[str], group: str, entry: str) -> None:
    """Write distribution ``distribution`` (module ``module`` registering ``names``) into ``root``,
    with the entry point ``entry = module:plugin`` in ``group``."""
    write_distribution(
        root, distribution, f"[{group}]\n{entry} = {module}:plugin\n", {module: PLUGIN_SOURCE.format(owner=module, names=names)}
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on ``sys.path`` to install test distributions into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_entry_point_cannot_take_over_another_launchers_name_in_either_load_order(site: Path) -> None:
    install(site, "hijack-plugin", "hijack_plugin_one", ["local"], "pycrew.launchers", "hijack")

    first = PluginRegistry()  # the hijacker loads before local
    with pytest.raises(PluginError) as raised:
        first.launcher("hijack")
    message = str(raised.value)
    for said in ("'hijack'", "hijack-plugin 0.1", "'local'", "pycrew-local", "register('hijack', ...)"):
        assert said in message, f"{said!r} missing from: {message}"
    assert first.launcher("local").distribution == "pycrew-local", "the hijacker serves 'local'"
    with pytest.raises(PluginError, match="'local'"):
        first.launcher("hijack")  # still refused, not half-registered by the first attempt

    second = PluginRegistry()  # local loads before the hijacker
    assert second.launcher("local").distribution == "pycrew-local"
    with pytest.raises(PluginError) as raised:
        second.launcher("hijack")
    assert "'local' belongs to plugin 'local' of distribution pycrew-local" in str(raised.value)
    assert second.launcher("local").distribution == "pycrew-local"


@pytest.mark.parametrize("names", [["stray_other"], ["stray", "stray_other"]], ids=["other-name", "own-and-other"])
def test_a_rejected_entry_point_registers_none_of_its_launchers(site: Path, names: list[str]) -> None:
    install(site, "stray-plugin", f"stray_plugin_{len(names)}", names, "pycrew.launchers", "stray")
    reg = PluginRegistry()
    with pytest.raises(PluginError, match=r"may register only the launcher of its own name, 'stray'.*'stray_other'"):
        reg.launcher("stray")
    with pytest.raises(LauncherNotFoundError):
        reg.launcher("stray_other")
    assert "stray_other" not in reg.installed_launchers()
    assert reg.pm.get_plugin("stray") is None, "the rejected plugin's hooks are still registered"


def test_a_launcher_registered_in_code_cannot_take_an_installed_launchers_name(monkeypatch: pytest.MonkeyPatch) -> None:
    class Impostor:
        @pycrew.hookimpl
        def pycrew_register_launchers(self, register: pycrew.RegisterLauncher) -> None:
            register("local", pycrew.LauncherOptions)

        @pycrew.hookimpl
        def pycrew_launch_workers(self, launcher: object, calls: object) -> list[object]:
            return []

        @pycrew.hookimpl
        def pycrew_terminate_workers(self, launcher: object, handles: object) -> None:
            pass

    reg = PluginRegistry()  # 'local' not loaded yet: registering first must not win the name
    with pytest.raises(PluginError, match=r"'impostor' \(registered in code\) .*'local'.* pycrew-local .*PYCREW_BLOCK"):
        reg.register(Impostor(), name="impostor")
    assert reg.launcher("local").distribution == "pycrew-local"
    monkeypatch.setenv("PYCREW_BLOCK_PLUGINS", "local")  # the way to replace an installed launcher on purpose
    blocked = PluginRegistry()
    blocked.register(Impostor(), name="impostor")
    assert blocked.launcher("local").distribution is None


def test_two_distributions_declaring_one_launcher_name_is_an_error_naming_both(site: Path) -> None:
    install(site, "shadow-local", "shadow_local_plugin", ["local"], "pycrew.launchers", "local")
    reg = PluginRegistry()
    assert reg.installed_launchers().count("local") == 1
    with pytest.raises(PluginError, match=r"'local' .* 2 installed distributions: .*(shadow-local 0\.1.*pycrew-local"
                       r"|pycrew-local .*shadow-local 0\.1)"):
        reg.launcher("local")


def test_an_observer_plugin_cannot_register_a_launcher(site: Path) -> None:
    install(site, "sneaky-observer", "sneaky_observer_plugin", ["local"], "pycrew.plugins", "sneaky")
    reg = PluginRegistry()  # refused, and left out (a broken observer no longer stops every launcher)
    [broken] = reg.broken
    assert re.search(r"plugin 'sneaky' .*sneaky-observer 0\.1.*'local'.*group 'pycrew\.plugins'", broken), broken
    assert reg.launcher("local").distribution == "pycrew-local"
