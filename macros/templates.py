"""``{name}`` / ``{name.stem}`` templates in macro strings. Only params can be named; nothing else is
evaluated."""

from __future__ import annotations

import re
from pathlib import PurePath

from damselfly.engine.io._files import stem

TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_]+))?\}")
ATTRS = {
    "stem": stem,
    "name": lambda p: PurePath(p).name,
    "suffix": lambda p: "".join(PurePath(p).suffixes),
    "parent": lambda p: PurePath(p).parent.name,
}


def template_names(text: str) -> list[tuple[str, str | None, int]]:
    """``(name, attribute, offset)`` of every template in ``text``."""
    return [(m.group(1), m.group(2), m.start()) for m in TEMPLATE.finditer(text)]


def expand(text: str, params: dict) -> str:
    """Replace ``{name}`` by ``str(params[name])`` and ``{name.attr}`` by the path attribute.

    ``stem`` is the file name up to its first dot (``scan_01.nii.gz`` -> ``scan_01``).
    """

    def sub(m):
        value = params[m.group(1)]
        attr = m.group(2)
        return ATTRS[attr](str(value)) if attr else str(value)

    return TEMPLATE.sub(sub, text)
