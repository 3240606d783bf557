"""Matplotlib figures as inline `<svg>` elements, for the self-contained HTML reports.

One way for every page (the chaos run's timeline, the load run's figures): the element only
(no XML prolog or doctype, which do not belong inside HTML), no date in its metadata (the same
run renders the same bytes), and no fixed width and height, so the page's CSS sizes it by its
`viewBox`.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_SIZE = re.compile(r'<svg([^>]*?) width="[^"]*" height="[^"]*"')


def inline_svg(figure: Figure, *, css_class: str | None = None) -> str:
    """The figure as an `<svg>` element to paste into a page, with `css_class` if given."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    attribute = f' class="{css_class}"' if css_class else ""
    return _SIZE.sub(rf"<svg\1{attribute}", text, count=1)
