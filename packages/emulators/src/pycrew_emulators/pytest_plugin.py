"""pytest plugin exposing the emulator fixtures (registered through the pytest11 entry point).

Each platform's fixtures live in their own module; they are imported here only when the
platform's client libraries are installed, so that installing the base package alone
does not break pytest.
"""

from __future__ import annotations

import importlib
import importlib.util

_FIXTURE_MODULES = {
    "pycrew_emulators.runner_fixtures": (),
    "pycrew_emulators.awsbatch_fixtures": ("moto", "boto3"),
    "pycrew_emulators.k8s_fixtures": ("kubernetes",),
    "pycrew_emulators.cloudrun_fixtures": ("google.cloud.run_v2",),
    "pycrew_emulators.batch_fixtures": (),
}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


for _module, _needs in _FIXTURE_MODULES.items():
    if all(_importable(n) for n in _needs) and _importable(_module):
        globals().update(
            {
                k: v
                for k, v in vars(importlib.import_module(_module)).items()
                if getattr(v, "_pytestfixturefunction", None) is not None
                or hasattr(v, "_fixture_function_marker")
                or type(v).__name__ == "FixtureFunctionDefinition"
            }
        )
