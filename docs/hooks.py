"""MkDocs hook: render the Sphinx roles of memscape's docstrings as code (and links).

The docstrings use Sphinx cross-reference roles (``:func:`descend```), which
mkdocstrings' Google parser leaves as text (``:func:<code>descend</code>``). This hook
turns each into an optional autorefs cross-reference: a link when the name is a full
path to a documented object (``memscape.landscape.critical.critical_points``), plain
code otherwise. ``~`` (show the last component only) is honoured.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")


def _autoref(match: re.Match[str]) -> str:
    short, name = match.group(1), match.group(2)
    shown = name.rsplit(".", 1)[-1] if short else name
    return f'<autoref identifier="{name}" optional><code>{shown}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    """Replace every ``:role:<code>name</code>`` of a rendered page."""
    return ROLE.sub(_autoref, html)
