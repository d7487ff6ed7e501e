"""pytest fixtures for the PBS (PBS Pro/OpenPBS, TORQUE) and LSF command-line emulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycrew_emulators.lsf import LsfEmulator
from pycrew_emulators.pbs import PbsEmulator

__all__ = ["lsf_emulator", "pbs_emulator"]


@pytest.fixture
def pbs_emulator(request: pytest.FixtureRequest) -> Iterator[PbsEmulator]:
    """A started :class:`~pycrew_emulators.pbs.PbsEmulator`, flavour ``"pbspro"`` by default.

    Parametrise the flavour indirectly::

        @pytest.mark.parametrize("pbs_emulator", ["pbspro", "torque"], indirect=True)

    ``bin_directory`` holds ``qsub``, ``qstat`` and ``qdel`` (not on PATH). Teardown kills
    every job's process group, stops the server and removes the temp dir, also when the
    test failed.
    """
    flavour = getattr(request, "param", "pbspro")
    if flavour not in ("pbspro", "torque"):
        raise ValueError(f"pbs_emulator's parameter must be 'pbspro' or 'torque', got {flavour!r}")
    emulator = PbsEmulator("torque" if flavour == "torque" else "pbspro")
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def lsf_emulator() -> Iterator[LsfEmulator]:
    """A started :class:`~pycrew_emulators.lsf.LsfEmulator` (``bsub``, ``bjobs``, ``bkill`` in ``bin_directory``).

    Teardown kills every job's process group, stops the server and removes the temp dir,
    also when the test failed.
    """
    emulator = LsfEmulator()
    try:
        yield emulator
    finally:
        emulator.close()
