"""Rendering of Open311 GeoReport v2 documents as XML and JSON (pure: no database, no framework state).

One document (plain dicts, lists and scalars) is rendered either way, so the two formats cannot drift:

* JSON is the "Spark convention" mapping of the XML: a list root stays a list, a dict root an object.
* XML gets the spec's container/element names: a list root is wrapped in ``<root_tag>`` with one
  ``<item_tag>`` per entry; a list inside a dict is ``<key>`` holding one element per entry, named by
  :data:`ITEM_TAGS` (``attributes`` → ``attribute``, ``formats`` → ``format`` …).
* ``None`` is ``null`` in JSON and an empty element in XML (as in the spec's examples); booleans are
  ``true``/``false``; ids are already strings in the document.

Datetimes are W3C-DTF with the city's zone offset, e.g. ``2026-03-01T09:30:00+08:00``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

FORMATS: Final = ("xml", "json")
CONTENT_TYPES: Final = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'

ITEM_TAGS: Final[Mapping[str, str]] = {
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
    "media_urls": "media_url",
    "notes": "note",
    "groups": "group",
}
"""Element name of the entries of a list-valued field, by the field's name."""


def w3c(value: dt.datetime | None, tz: ZoneInfo) -> str | None:
    """An aware datetime as W3C-DTF in the city's zone, to the second (``2026-03-01T09:30:00+08:00``)."""
    if value is None:
        return None
    return value.astimezone(tz).isoformat(timespec="seconds")


XML_FORBIDDEN: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 does not allow (§2.2 Char: C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF)."""


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 forbids replaced by U+FFFD, so the document stays well-formed."""
    return XML_FORBIDDEN.sub("\ufffd", text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return xml_safe(str(value))


def _fill(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, key)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _fill(el, k, v)
    elif isinstance(value, (list, tuple)):
        item_tag = ITEM_TAGS.get(key, "item")
        for v in value:
            _fill(el, item_tag, v)
    else:
        el.text = _text(value)


def to_xml(doc: Mapping[str, Any] | Sequence[Any], root_tag: str, item_tag: str | None = None) -> bytes:
    """Render a document as UTF-8 XML with a declaration.

    Args:
        doc: A dict (rendered as the children of ``<root_tag>``) or a list (one ``<item_tag>`` per entry).
        root_tag: The root element (``services``, ``service_requests``, ``errors`` …).
        item_tag: The element of each entry of a list root (``service``, ``request``, ``error`` …).
    """
    root = ET.Element(root_tag)
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            _fill(root, k, v)
    else:
        assert item_tag is not None, "a list root needs an item tag"
        for entry in doc:
            _fill(root, item_tag, entry)
    return (XML_DECLARATION + ET.tostring(root, encoding="unicode")).encode("utf-8")


def to_json(doc: Mapping[str, Any] | Sequence[Any]) -> bytes:
    """Render a document as UTF-8 JSON (Chinese kept as characters, not escapes)."""
    # A lone surrogate (from a JSON \\ud800 escape stored earlier) cannot be UTF-8: it becomes "?".
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def render(
    fmt: str, doc: Mapping[str, Any] | Sequence[Any], root_tag: str, item_tag: str | None = None
) -> tuple[bytes, str]:
    """The body and content type of ``doc`` in ``fmt`` (``xml`` or ``json``)."""
    if fmt == "json":
        return to_json(doc), CONTENT_TYPES["json"]
    return to_xml(doc, root_tag, item_tag), CONTENT_TYPES["xml"]


def error_doc(errors: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    """The spec's error body: a list of ``{code, description}``."""
    return [{"code": code, "description": description} for code, description in errors]
