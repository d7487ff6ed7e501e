"""Real test distributions for plugin tests: a module and its ``*.dist-info`` folder (metadata
and entry points) written into a directory that the test puts on ``sys.path``, so that
``importlib.metadata`` finds them exactly as it finds an installed wheel."""

from __future__ import annotations

from pathlib import Path


def write_distribution(root: Path, distribution: str, entry_points: str, modules: dict[str, str] | None = None) -> Path:
    """Write distribution ``distribution`` 0.1 into ``root``: its ``modules`` (name -> source)
    and ``entry_points`` (the text of ``entry_points.txt``). Returns its dist-info folder."""
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(source)
    dist = root / f"{distribution.replace('-', '_')}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    return dist
