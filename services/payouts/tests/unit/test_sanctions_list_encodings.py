"""A list file in any encoding: a DTD or an entity declaration is refused by the parser whatever the bytes look like
(UTF-8, UTF-16 and UTF-32, with and without a byte-order mark, an `encoding=` declaration that agrees or not), and
a clean file reads the same in every encoding the parser takes, or is refused whole; never loaded otherwise."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_compliance.domain.sanctions import SanctionsList
from prizeflow_compliance.domain.sanctions_formats import ListFormatError, parse_list


@dataclass(frozen=True)
class Encoding:
    codec: str
    bom: bytes = b""

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.codec)

    def __str__(self) -> str:
        return self.codec + ("+bom" if self.bom else "")


ENCODINGS = (
    Encoding("utf-8"),
    Encoding("utf-8", codecs.BOM_UTF8),
    Encoding("utf-16-le"),
    Encoding("utf-16-be"),
    Encoding("utf-16-le", codecs.BOM_UTF16_LE),
    Encoding("utf-16-be", codecs.BOM_UTF16_BE),
    Encoding("utf-32-le"),
    Encoding("utf-32-be"),
    Encoding("utf-32-le", codecs.BOM_UTF32_LE),
    Encoding("utf-32-be", codecs.BOM_UTF32_BE),
    Encoding("latin-1"),
    Encoding("cp037"),  # EBCDIC: no '<' where an ASCII reader looks for one
)
# None: no XML declaration at all; "": a declaration without `encoding=`.
DECLARED = (None, "", "UTF-8", "UTF-16", "UTF-16LE", "UTF-16BE", "UTF-32", "ISO-8859-1", "US-ASCII", "cp037")

ENTITY_TEXT = "Smuggled Entity Name"
DTDS = (
    f'<!DOCTYPE sdnList [<!ENTITY who "{ENTITY_TEXT}">]>',
    '<!DOCTYPE sdnList SYSTEM "file:///etc/passwd">',
    '<!DOCTYPE sdnList PUBLIC "-//x//y" "http://lists.test/x.dtd">',
    '<!DOCTYPE sdnList [<!ENTITY % p SYSTEM "http://lists.test/p.dtd"> %p;]>',
    '<!DOCTYPE sdnList [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    "<!DOCTYPE sdnList>",
    '<!DOCTYPE sdnList [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "x" NDATA n>]>',
    '<!ENTITY who "smuggled">',  # a declaration outside any DOCTYPE: not well-formed
)
# Where the declaration stands: in the prolog (after nothing, whitespace, a comment or a processing instruction),
# or where XML allows none (inside the root, after it).
PLACES = ("prolog", "whitespace", "comment", "pi", "inside", "after")
ENTRY = (
    "<sdnEntry><uid>7001</uid><lastName>{name}</lastName><sdnType>Entity</sdnType>"
    "<idList><id><uid>70010</uid><idType>Digital Currency Address - ETH</idType>"
    "<idNumber>0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e</idNumber></id></idList></sdnEntry>"
)
BODY = (
    '<sdnList xmlns="http://tempuri.org/sdnList.xsd"><publshInformation><Publish_Date>12/01/2026</Publish_Date>'
    "</publshInformation>{entry}</sdnList>"
)


def document(declared: str | None, *, dtd: str = "", place: str = "prolog", name: str = "Plain Listed Firm") -> str:
    head = "" if declared is None else '<?xml version="1.0"' + (f' encoding="{declared}"' if declared else "") + "?>"
    body = BODY.format(entry=ENTRY.format(name="&who;" if dtd and "who" in dtd else name))
    if not dtd:
        return head + "\n" + body
    if place == "inside":
        return head + body.replace("<publshInformation>", dtd + "<publshInformation>", 1)
    if place == "after":
        return head + body + dtd
    lead = {"prolog": "", "whitespace": "\n  \r\n\t", "comment": "<!-- list -->\n", "pi": "<?publisher x?>"}[place]
    return head + lead + dtd + "\n" + body


def parsed(data: bytes) -> SanctionsList | ListFormatError:
    try:
        return parse_list("ofac_sdn", data)
    except ListFormatError as err:
        return err


@given(
    encoding=st.sampled_from(ENCODINGS),
    declared=st.sampled_from(DECLARED),
    dtd=st.sampled_from(DTDS),
    place=st.sampled_from(PLACES),
)
def test_a_dtd_or_an_entity_is_refused_whatever_the_encoding(
    encoding: Encoding, declared: str | None, dtd: str, place: str
) -> None:
    try:
        data = encoding.encode(document(declared, dtd=dtd, place=place))
    except UnicodeEncodeError:  # cp037/latin-1 cannot spell every document: nothing to parse
        return
    outcome = parsed(data)
    assert isinstance(outcome, ListFormatError), f"{encoding} {declared!r} {place}: loaded {outcome}"


@given(encoding=st.sampled_from(ENCODINGS), declared=st.sampled_from(DECLARED))
def test_a_clean_file_reads_the_same_in_any_encoding_or_is_refused_whole(
    encoding: Encoding, declared: str | None
) -> None:
    reference = parse_list("ofac_sdn", document(None).encode())
    outcome = parsed(encoding.encode(document(declared)))
    assert isinstance(outcome, ListFormatError) or outcome == reference


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [
        (Encoding("utf-8"), None),
        (Encoding("utf-8"), "UTF-8"),
        (Encoding("utf-8", codecs.BOM_UTF8), "UTF-8"),
        (Encoding("utf-16-le"), "UTF-16"),
        (Encoding("utf-16-be"), "UTF-16"),
        (Encoding("utf-16-le", codecs.BOM_UTF16_LE), "UTF-16"),
        (Encoding("utf-16-be", codecs.BOM_UTF16_BE), None),
    ],
    ids=str,
)
def test_a_clean_file_in_an_encoding_xml_allows_is_read(encoding: Encoding, declared: str | None) -> None:
    """UTF-16 is a legitimate XML encoding: what made the smuggling possible was never the encoding, it is the DTD."""
    listed = parse_list("ofac_sdn", encoding.encode(document(declared)))
    assert [(e.uid, e.names, e.addresses) for e in listed.entries] == [
        ("7001", ("Plain Listed Firm",), ("ETH:0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",))
    ]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_the_utf16_file_of_issue_43_is_refused_not_loaded_with_its_entity_expanded(codec: str) -> None:
    """No byte-order mark, so no ASCII `<!DOCTYPE` in the bytes: the parser itself meets the declaration."""
    data = document("UTF-16", dtd=DTDS[0]).encode(codec)
    assert b"<!DOCTYPE" not in data
    assert not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    with pytest.raises(ListFormatError, match="DTD or an entity"):
        parse_list("ofac_sdn", data)


@pytest.mark.parametrize("source", ["ofac_sdn", "ofac_consolidated", "eu", "un"])
def test_every_format_refuses_a_declaration_in_utf16(source: str) -> None:
    roots = {"ofac_sdn": "sdnList", "ofac_consolidated": "sdnList", "eu": "export", "un": "CONSOLIDATED_LIST"}
    root = roots[source]
    text = f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE {root} [<!ENTITY x "y">]><{root}>&x;</{root}>'
    for codec in ("utf-16-le", "utf-16-be", "utf-16"):
        with pytest.raises(ListFormatError, match="DTD or an entity"):
            parse_list(source, text.encode(codec))
