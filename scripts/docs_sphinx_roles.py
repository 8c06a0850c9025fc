"""A Griffe extension for the documentation site: docstrings written for Sphinx, shown right.

The library's docstrings name other objects with Sphinx roles
(``:class:`~llmrouter_core.Router```, ``:func:`load_router```), which Markdown would print
literally. This extension rewrites each role as inline code of the name it shows (the last
component with ``~``, else the whole target), turns a paragraph's closing ``::``
(reStructuredText's "a literal block follows") into ``:``, and reads an ``Example:`` section
as ``Examples:`` (so its doctest lines are shown as code). It changes what the site shows,
never the code. ``mkdocs.yml`` loads it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)
_EXAMPLE = re.compile(r"^(\s*)Example:$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    tilde, target = match.group(1), match.group(2).strip()
    shown = target.lstrip(".")
    if tilde:
        shown = shown.rsplit(".", 1)[-1]
    return f"`{shown}`"


def rewrite(text: str) -> str:
    """``text`` with Sphinx roles as inline code, a closing ``::`` as ``:`` and ``Example:``
    sections as ``Examples:``."""
    text = _EXAMPLE.sub(r"\1Examples:", text)
    return _LITERAL_BLOCK.sub(":", _ROLE.sub(_role, text))


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring with :func:`rewrite` once the object tree is built."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)
