"""nox sessions: tests per package, conformance per launcher, lint, typecheck, benchmarks.

``nox -l`` lists them. Sessions reuse one virtualenv per session name; SLURM tests need a
running cluster (``eval "$(scripts/slurm/start.sh)"``) and are skipped without one.
"""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "core",
    "local",
    "slurm",
    "sge",
    "pbs",
    "lsf",
    "k8s",
    "cloudrun",
    "awsbatch",
    "emulators",
    "template",
    "docs",
]

CORE = ["-e", "packages/core"]
LOCAL = ["-e", "packages/launcher-local"]
TEST_TOOLS = ["pytest", "pytest-timeout", "hypothesis"]
#: What the joblib backend's tests and docs run on: joblib and scikit-learn (its data sets
#: ship with it). Under CI=true their tests fail rather than skip when these are missing.
JOBLIB_TOOLS = ["joblib", "scikit-learn"]
#: The dashboard's tests: prometheus_client parses /metrics; playwright drives Debian's
#: chromium (scripts/install-chromium.sh; never `playwright install`, which downloads one).
DASHBOARD_TOOLS = ["prometheus_client", "playwright"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package."""
    session.install("ruff")
    session.run("ruff", "check", "packages", "tests", "benchmarks", "noxfile.py")


#: Import packages of every launcher (and the template plugin), for mypy.
TYPED_PLUGINS = [
    "packages/launcher-local/src/pycrew_local",
    "packages/launcher-slurm/src/pycrew_slurm",
    "packages/launcher-sge/src/pycrew_sge",
    "packages/launcher-pbs/src/pycrew_pbs",
    "packages/launcher-lsf/src/pycrew_lsf",
    "packages/launcher-k8s/src/pycrew_k8s",
    "packages/launcher-cloudrun/src/pycrew_cloudrun",
    "packages/launcher-awsbatch/src/pycrew_awsbatch",
    "examples/plugin-template/src/pycrew_template",
]


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on core, then on every launcher package (against core's types and their SDKs)."""
    plugins = [arg for path in TYPED_PLUGINS for arg in ("-e", path.split("/src/")[0])]
    session.install("mypy", "types-psutil", "types-tqdm", "matplotlib", *CORE, *plugins)
    session.run("mypy", "--strict", "packages/core/src/pycrew")
    session.run("mypy", "--strict", *TYPED_PLUGINS)


@nox.session
def core(session: nox.Session) -> None:
    """Core's own tests and the cross-package tests on the local launcher (joblib and dashboard included)."""
    session.install(*CORE, *LOCAL, *TEST_TOOLS, *JOBLIB_TOOLS, *DASHBOARD_TOOLS)
    session.run("pytest", "packages/core/tests", "tests", *session.posargs)


@nox.session
def local(session: nox.Session) -> None:
    """The local launcher, conformance suite included."""
    session.install(*CORE, *LOCAL, *TEST_TOOLS)
    session.run("pytest", "packages/launcher-local/tests", *session.posargs)


@nox.session
def slurm(session: nox.Session) -> None:
    """The SLURM launcher against a real SLURM (start it with scripts/slurm/start.sh)."""
    session.install(*CORE, "-e", "packages/launcher-slurm", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-slurm/tests", *session.posargs)


@nox.session
def sge(session: nox.Session) -> None:
    """The SGE launcher against a real Son of Grid Engine (scripts/sge/install.sh, then start.sh)."""
    session.install(*CORE, "-e", "packages/launcher-sge", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-sge/tests", *session.posargs)


@nox.session
def pbs(session: nox.Session) -> None:
    """The PBS launcher (PBS Pro and TORQUE) against the PBS command-line emulator."""
    session.install(*CORE, "-e", "packages/launcher-pbs", "-e", "packages/emulators", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-pbs/tests", *session.posargs)


@nox.session
def lsf(session: nox.Session) -> None:
    """The LSF launcher against the LSF command-line emulator."""
    session.install(*CORE, "-e", "packages/launcher-lsf", "-e", "packages/emulators", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-lsf/tests", *session.posargs)


@nox.session
def k8s(session: nox.Session) -> None:
    """The Kubernetes launcher against the Kubernetes API emulator."""
    session.install(*CORE, "-e", "packages/launcher-k8s", "-e", "packages/emulators[k8s]", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-k8s/tests", *session.posargs)


@nox.session
def cloudrun(session: nox.Session) -> None:
    """The Cloud Run launcher against the Cloud Run v2 API emulator."""
    session.install(*CORE, "-e", "packages/launcher-cloudrun", "-e", "packages/emulators[cloudrun]", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-cloudrun/tests", *session.posargs)


@nox.session
def awsbatch(session: nox.Session) -> None:
    """The AWS Batch launcher against moto and the fake Docker API."""
    session.install(*CORE, "-e", "packages/launcher-awsbatch", "-e", "packages/emulators[awsbatch]", *TEST_TOOLS)
    session.run("pytest", "packages/launcher-awsbatch/tests", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict and execute its code blocks (``nox -s docs-serve`` to read it)."""
    session.install(*CORE, *LOCAL, "mkdocs-material", "mkdocstrings[python]", "matplotlib", *JOBLIB_TOOLS, *TEST_TOOLS)
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")
    session.run("pytest", "tests/test_docs.py", "packages/core/tests/test_docs_plugins.py", *session.posargs)


@nox.session(name="docs-serve")
def docs_serve(session: nox.Session) -> None:
    """Build the site and serve it at http://127.0.0.1:8000 (live reload); Ctrl-C stops it."""
    session.install(*CORE, *LOCAL, "mkdocs-material", "mkdocstrings[python]", "matplotlib")
    session.run("mkdocs", "serve", "--dev-addr", "127.0.0.1:8000", *session.posargs)


@nox.session
def emulators(session: nox.Session) -> None:
    """The AWS Batch, Kubernetes and Cloud Run emulators, through the official clients."""
    session.install(*CORE, "-e", "packages/emulators[all]", *TEST_TOOLS)
    session.run("pytest", "packages/emulators/tests", *session.posargs)


@nox.session
def template(session: nox.Session) -> None:
    """The example third-party plugin, installed like an outside package."""
    session.install(*CORE, "examples/plugin-template", *TEST_TOOLS)
    session.run("pytest", "examples/plugin-template/tests", *session.posargs)


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Side-by-side benchmarks (prints numbers; never fails on them)."""
    session.install(*CORE, *LOCAL, "dask[distributed]", "loky", "joblib", "matplotlib")
    # Ray is optional (big, and without wheels for every Python): if it does not install, its column is skipped.
    session.run("python", "-m", "pip", "install", "ray", success_codes=[0, 1])
    session.run("python", "benchmarks/bench_compare.py", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """The stress suite at full size: chaos kills, wire fuzzer, network faults (root), scale; prints its figures."""
    session.install(*CORE, *LOCAL, *TEST_TOOLS, "hypothesis")
    session.run(
        "pytest", "tests/stress", "-s", "-p", "no:cacheprovider", *session.posargs, env={"PYCREW_STRESS": "full"}
    )
