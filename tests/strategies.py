"""Reusable Hypothesis strategies.

Generic building blocks (text that is valid inside XML, strings that look almost like
numbers, random damage to a real document) plus one BGG-shaped generator: well-formed
`thing` answers whose values are random. Parsers, clients (fed through respx) and API tests
can all draw from them.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

__all__ = [
    "almost_numbers",
    "mutations",
    "replace_attribute_values",
    "thing_documents",
    "xml_attribute_text",
    "xml_chars",
    "xmlish_text",
]

# Characters that matter to an XML tokenizer, so random text hits its interesting paths.
_XML_PUNCTUATION = "<>/=\"' &;!?-[]#%:\n\t"
_XML_WORDS = (
    "<?xml version='1.0'?>",
    "<!DOCTYPE",
    "<!ENTITY",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "&amp;",
    "&#10;",
    "&lt;",
    "<items>",
    "</items>",
    "<item type='boardgame' id='1'>",
    "</item>",
    "<name type='primary' value='x'/>",
    "<error message='e'/>",
    "<html>",
)
_ALMOST_NUMBERS = (
    "",
    "0",
    "-0",
    "+1",
    " 12 ",
    "007",
    "1_000",
    "١٢",  # Arabic-Indic digits: int() accepts them, a parser should not
    "1e3",
    "3.",
    ".5",
    "0x1F",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "Not Ranked",
    "N/A",
    "9" * 30,
    "2147483648",
    "-2147483648",
)
_ATTRIBUTE_RE = re.compile(rb"""([A-Za-z_:][-\w.:]*)\s*=\s*("[^"]*"|'[^']*')""")


def xml_chars() -> st.SearchStrategy[str]:
    """Single characters that XML 1.0 allows in text and attribute values."""
    # Cc: C0/C1 controls (only tab, newline, CR are legal); Cs: lone surrogates;
    # Cn: unassigned code points, which include the non-characters U+FFFE and U+FFFF.
    return st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn"))


def xml_attribute_text(*, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text that is legal in an attribute value once escaped (e.g. with `quoteattr`)."""
    return st.text(xml_chars(), max_size=max_size)


def almost_numbers() -> st.SearchStrategy[str]:
    """Strings that are numbers, nearly numbers, or numbers' usual stand-ins.

    All of them are legal XML attribute text, so they can go into a well-formed document.
    """
    return st.one_of(
        st.integers(-(10**6), 10**6).map(str),
        st.integers().map(str),
        st.floats().map(str),
        st.sampled_from(_ALMOST_NUMBERS),
        xml_attribute_text(max_size=8),
    )


def xmlish_text(*, max_size: int = 300) -> st.SearchStrategy[str]:
    """Arbitrary text, biased towards XML punctuation and tag-like fragments."""
    piece = st.one_of(
        st.sampled_from(_XML_WORDS),
        st.text(st.sampled_from(_XML_PUNCTUATION), min_size=1, max_size=5),
        st.text(max_size=10),
    )
    return st.lists(piece, max_size=max_size // 10).map("".join)


def mutations(document: bytes) -> st.SearchStrategy[bytes]:
    """Damaged copies of `document`: truncated, a slice deleted, bytes inserted, or some
    attribute values replaced."""
    size = len(document)
    offsets = st.integers(0, size)
    truncated = offsets.map(lambda i: document[:i])
    sliced = st.tuples(offsets, offsets).map(lambda ij: document[: min(ij)] + document[max(ij) :])
    inserted = st.tuples(offsets, st.binary(min_size=1, max_size=64)).map(
        lambda ib: document[: ib[0]] + ib[1] + document[ib[0] :]
    )
    return st.one_of(truncated, sliced, inserted, replace_attribute_values(document))


def replace_attribute_values(
    document: bytes, values: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[bytes]:
    """`document` with some of its attribute values replaced by `values` (default: almost
    numbers or any text). A replacement is sometimes escaped, sometimes pasted raw, so both
    well-formed and broken documents come out."""
    spans = [m.span(2) for m in _ATTRIBUTE_RE.finditer(document)]
    if not spans:
        return st.just(document)
    replacement = values if values is not None else st.one_of(almost_numbers(), st.text())

    @st.composite
    def replaced(draw: st.DrawFn) -> bytes:
        chosen = draw(st.sets(st.integers(0, len(spans) - 1), min_size=1, max_size=20))
        out = document
        # Right to left, so the earlier spans stay valid while we splice.
        for index in sorted(chosen, reverse=True):
            start, end = spans[index]
            text = draw(replacement)
            quoted = quoteattr(text) if draw(st.booleans()) else f'"{text}"'
            out = out[:start] + quoted.encode("utf-8", "surrogatepass") + out[end:]
        return out

    return replaced()


def _value_element(tag: str, value: str) -> str:
    return f"<{tag} value={quoteattr(value)} />"


# Built once: Hypothesis validates every strategy object it is given, so building them inside
# the composites below would cost more than the drawing itself.
_TEXT = xml_attribute_text()
_DESCRIPTION = st.text(xml_chars(), max_size=200)
_URL = st.one_of(st.just("//cf.geekdo-images.com/x.jpg"), _TEXT)
_VALUE_TAGS = (
    "yearpublished",
    "minplayers",
    "maxplayers",
    "playingtime",
    "minplaytime",
    "maxplaytime",
    "minage",
)
_VALUE_TAG_SUBSETS = st.lists(st.sampled_from(_VALUE_TAGS), unique=True, max_size=len(_VALUE_TAGS))
_LINK_TYPES = st.sampled_from(
    [
        "boardgamecategory",
        "boardgamemechanic",
        "boardgamedesigner",
        "boardgamepublisher",
        "boardgamefamily",
        "boardgameartist",
        "boardgameexpansion",
    ]
)
_LINKS = st.lists(st.tuples(_LINK_TYPES, _TEXT), max_size=4)
_RANK_NAMES = st.sampled_from(["boardgame", "strategygames", "familygames"])
_ITEM_TYPES = st.sampled_from(["boardgame", "boardgameexpansion", "boardgameaccessory", "rpgitem"])


@st.composite
def _item(
    draw: st.DrawFn,
    *,
    item_id: str,
    item_type: str,
    primary_name: str | None,
    numbers: st.SearchStrategy[str],
    versions: st.SearchStrategy[list[str]] | None,
) -> str:
    children: list[str] = []
    if primary_name is not None:
        children.append(_value_element('name type="primary" sortindex="1"', primary_name))
    if draw(st.booleans()):
        children.append(_value_element('name type="alternate" sortindex="1"', draw(_TEXT)))
    for tag in ("thumbnail", "image"):
        if draw(st.booleans()):
            children.append(f"<{tag}>{escape(draw(_URL))}</{tag}>")
    if draw(st.booleans()):
        children.append(f"<description>{escape(draw(_DESCRIPTION))}</description>")
    children += [_value_element(tag, draw(numbers)) for tag in draw(_VALUE_TAG_SUBSETS)]
    children += [
        f'<link type="{link_type}" id="1" value={quoteattr(value)} />'
        for link_type, value in draw(_LINKS)
    ]
    if draw(st.booleans()):
        ranks = "".join(
            f'<rank type="subtype" id="1" name="{name}" value={quoteattr(value)} />'
            for name, value in draw(st.lists(st.tuples(_RANK_NAMES, numbers), max_size=2))
        )
        fields = "".join(_value_element(tag, draw(numbers)) for tag in ("average", "bayesaverage"))
        children.append(
            f'<statistics page="1"><ratings>{fields}<ranks>{ranks}</ranks></ratings></statistics>'
        )
    if versions is not None:
        children.append("<versions>" + "".join(draw(versions)) + "</versions>")
    children = draw(st.permutations(children))
    return f"<item type={quoteattr(item_type)} id={quoteattr(item_id)}>{''.join(children)}</item>"


@st.composite
def thing_documents(
    draw: st.DrawFn,
    *,
    item_ids: st.SearchStrategy[str],
    primary_names: st.SearchStrategy[str | None],
    numbers: st.SearchStrategy[str] | None = None,
    max_items: int = 2,
) -> str:
    """Well-formed BGG `thing` answers: `<items>` holding 1..max_items top-level `<item>`.

    Each top-level item gets an id from `item_ids`, a primary name from `primary_names`
    (None: no primary name), numeric attribute values from `numbers` (default:
    `almost_numbers`), random links and statistics, and possibly a nested
    `<versions><item type="boardgameversion">` whose id may repeat the parent's.
    """
    numbers = numbers if numbers is not None else almost_numbers()
    items = []
    for _ in range(draw(st.integers(1, max_items))):
        item_id = draw(item_ids)
        version = _item(
            item_id=draw(st.one_of(st.just(item_id), numbers)),
            item_type="boardgameversion",
            primary_name="A version",
            numbers=numbers,
            versions=None,
        )
        item = _item(
            item_id=item_id,
            item_type=draw(_ITEM_TYPES),
            primary_name=draw(primary_names),
            numbers=numbers,
            versions=st.lists(version, max_size=1),
        )
        items.append(draw(item))
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="utf-8"?>']))
    terms = 'termsofuse="https://boardgamegeek.com/xmlapi/termsofuse"'
    return f"{declaration}<items {terms}>{''.join(items)}</items>"
