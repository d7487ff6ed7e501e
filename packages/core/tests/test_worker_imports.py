"""The worker side imports nothing of the controller side (it runs in a bare container)."""

from __future__ import annotations

import json
import subprocess
import sys

import pycrew

#: Modules a worker must never load: the controller side and its dependencies.
CONTROLLER_SIDE = (
    "pycrew.controller",
    "pycrew.control.dispatcher",
    "pycrew.control.scaler",
    "pycrew.plugins",
    "pycrew.plugin_api",
    "pycrew.config",
    "pycrew.monitor",
    "pluggy",
    "psutil",
    "tqdm",
    "asyncio",
)


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(out.stdout.splitlines()[-1]))


def test_the_worker_loads_nothing_of_the_controller_side():
    loaded = _modules_after("import pycrew.worker")
    bad = [m for m in loaded if any(m == c or m.startswith(c + ".") for c in CONTROLLER_SIDE)]
    assert not bad, f"python -m pycrew.worker imports controller-side modules: {bad}"
    ours = [m for m in loaded if m.startswith("pycrew")]
    assert set(ours) <= {"pycrew", "pycrew.worker", "pycrew.protocol", "pycrew.execution", "pycrew.transport",
                         "pycrew.transport.sockets", "pycrew.transport.nng"}, ours


def test_import_pycrew_alone_loads_no_submodule():
    loaded = _modules_after("import pycrew")
    assert [m for m in loaded if m.startswith("pycrew.")] == []


def test_every_public_name_resolves_and_is_listed():
    for name in pycrew.__all__:
        assert getattr(pycrew, name) is not None, name
    assert set(pycrew._WHERE) | {"__version__", "hookimpl", "metrics"} == set(pycrew.__all__)
    assert "Controller" in dir(pycrew)


def test_an_unknown_name_is_an_attribute_error():
    try:
        pycrew.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("pycrew.NoSuchThing did not raise AttributeError")
