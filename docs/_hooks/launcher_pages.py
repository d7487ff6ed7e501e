"""mkdocs hook: the nav's "Launchers" section lists the launcher pages that exist.

Launcher pages are written with their launchers, so a page named in ``mkdocs.yml`` may
not exist yet: it is left out of the nav (an info line, not a warning, so that
``mkdocs build --strict`` passes), and any ``launchers/*.md`` the nav does not name is
appended, titled by its first heading. Every other nav entry is checked by mkdocs as usual.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.launcher_pages")

SECTION = "Launchers"
FOLDER = "launchers"


def _path(entry: Any) -> str:
    """The file of a nav entry (``"a.md"`` or ``{"Title": "a.md"}``)."""
    return str(next(iter(entry.values())) if isinstance(entry, dict) else entry)


def launcher_entries(entries: list[Any], docs_dir: Path) -> list[Any]:
    """``entries`` whose page exists, then the launcher pages ``entries`` does not name."""
    named = {_path(e) for e in entries}
    kept = []
    for entry in entries:
        if (docs_dir / _path(entry)).is_file():
            kept.append(entry)
        else:
            log.info("%s is not written yet: left out of the nav", _path(entry))
    for page in sorted((docs_dir / FOLDER).glob("*.md")):
        relative = page.relative_to(docs_dir).as_posix()
        if relative not in named:
            kept.append(relative)
    return kept


def on_config(config: Any) -> Any:
    """Rewrite the Launchers section of the nav before mkdocs resolves it."""
    docs_dir = Path(config.docs_dir)
    for item in config.nav or []:
        if isinstance(item, dict) and SECTION in item:
            item[SECTION] = launcher_entries(list(item[SECTION]), docs_dir)
            return config
    log.warning("mkdocs.yml has no nav section %r: launcher pages are not listed", SECTION)
    return config
