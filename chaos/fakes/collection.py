"""The 40 games of the real collection fixture, as `thing` items the fake BGG can answer.

BGG's `collection` answer (`collection_fagentu007_stats.xml`) carries, for each game, its real
name, year, player counts, playing times, ratings, ranks and image URLs: enough for a `thing`
item the service imports like any other. The demo fills its catalogue with these (Catan,
Pandemic, Chess, ...) instead of synthetic names. What a collection does not carry stays out
of the item (description, minimum age, categories and the other links); nothing is made up.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from defusedxml.ElementTree import fromstring

COLLECTION_FIXTURE = "collection_fagentu007_stats.xml"
_THING_TYPE = {"boardgame": "boardgame", "boardgameexpansion": "boardgameexpansion"}
_PLAY_ATTRIBUTES = ("minplayers", "maxplayers", "playingtime", "minplaytime", "maxplaytime")
_RATING_VALUES = ("usersrated", "average", "bayesaverage", "stddev", "median")


def collection_items(body: bytes) -> dict[int, tuple[str, str]]:
    """`{bgg_id: (thing type, raw <item>)}` for every game of a `collection` answer."""
    items: dict[int, tuple[str, str]] = {}
    for entry in fromstring(body).iter("item"):
        kind = _THING_TYPE.get(entry.get("subtype", ""))
        object_id = entry.get("objectid", "")
        if kind is None or not object_id.isdigit():
            continue
        items[int(object_id)] = (kind, _thing_item(entry, kind, int(object_id)))
    return items


def _text(entry: Element, tag: str) -> str:
    return (entry.findtext(tag) or "").strip()


def _value(tag: str, value: str, indent: str = "\t") -> str:
    return f"{indent}<{tag} value={quoteattr(value)} />"


def _thing_item(entry: Element, kind: str, bgg_id: int) -> str:
    # A collection names a game as its owner sees it (a translation, say); BGG's primary name
    # is then `originalname`, and the owner's name one of its alternates.
    shown, original = _text(entry, "name"), _text(entry, "originalname")
    lines = [f'<item type="{kind}" id="{bgg_id}">']
    for tag in ("thumbnail", "image"):
        if _text(entry, tag):
            lines.append(f"\t<{tag}>{xml_escape(_text(entry, tag))}</{tag}>")
    lines.append(f'\t<name type="primary" sortindex="1" value={quoteattr(original or shown)} />')
    if original and shown != original:
        lines.append(f'\t<name type="alternate" sortindex="1" value={quoteattr(shown)} />')
    if _text(entry, "yearpublished"):
        lines.append(_value("yearpublished", _text(entry, "yearpublished")))
    stats = entry.find("stats")
    if stats is not None:
        lines += [_value(name, stats.get(name, "")) for name in _PLAY_ATTRIBUTES if stats.get(name)]
        lines += _statistics(stats)
    lines.append("</item>")
    return "\n".join(lines)


def _statistics(stats: Element) -> list[str]:
    rating = stats.find("rating")
    if rating is None:
        return []
    lines = ['\t<statistics page="1">', "\t\t<ratings>"]
    for name in _RATING_VALUES:
        node = rating.find(name)
        if node is not None and node.get("value") is not None:
            lines.append(_value(name, node.get("value", ""), "\t\t\t"))
    lines.append("\t\t\t<ranks>")
    for rank in rating.iterfind("ranks/rank"):
        attributes = " ".join(f"{key}={quoteattr(value)}" for key, value in rank.attrib.items())
        lines.append(f"\t\t\t\t<rank {attributes} />")
    lines.append("\t\t\t</ranks>")
    if stats.get("numowned"):
        lines.append(_value("owned", stats.get("numowned", ""), "\t\t\t"))
    lines += ["\t\t</ratings>", "\t</statistics>"]
    return lines
