"""mkdocs hook: Sphinx roles in docstrings become code, linked where the API reference has the target.

pycrew's docstrings use Sphinx roles (``:class:`~pycrew.TaskResult```) and ``Example::``
literal blocks, which Markdown renders verbatim as ``:class:<code>~pycrew.TaskResult</code>``.
After each page is rendered, this hook turns every role into an optional cross-reference
(resolved by mkdocs-autorefs when the reference documents the target, plain code
otherwise), shortens ``~a.b.C`` to ``C`` as Sphinx does, and drops the second colon of
``Example::``.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")
LITERAL = re.compile(r"::</p>")


def _reference(match: re.Match[str]) -> str:
    tilde, target, call = match.group(1), match.group(2), match.group(3) or ""
    shown = target.rsplit(".", 1)[-1] if tilde else target
    identifier = target if "." in target else f"pycrew.{target}"
    return f'<autoref identifier="{identifier}" optional><code>{shown}{call}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    """Rewrite roles and literal-block colons in one rendered page."""
    return LITERAL.sub(":</p>", ROLE.sub(_reference, html))
