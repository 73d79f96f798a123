"""Sanctions lists as Prizeflow screens against them: entries, spellings, an exact address index and a fuzzy name
matcher (docs/adr/0012-pay-only-whom-you-may.md).

Addresses are compared exactly, in the one spelling every destination is compared, counted and keyed in
(`prizeflow_contracts.providers.destination_spelling`, the deny list's too): a TON address in its raw form,
everything else without whitespace and case-folded. Where a rail reads the memo (`MEMO_TYPES`), the memo is part of
the destination: every address-shaped token it carries is screened too, in the same spellings (`memo_tokens`). Names
are compared
after normalisation (accents, case, punctuation and token order do not matter) with a Jaro-Winkler based score on
0-1000; entries are blocked by token keys so a name is compared with a few hundred entries, never all of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache

from prizeflow_contracts.providers import MEMO_TYPES, DestinationType, PayoutDestination, destination_spelling

SOURCES = ("ofac_sdn", "ofac_consolidated", "eu", "un")
MAX_SCORE = 1000
DOB_MISMATCH_PENALTY = 150  # a name match whose every listed date of birth contradicts the person's


class EntryKind(StrEnum):
    INDIVIDUAL = "individual"
    ENTITY = "entity"
    VESSEL = "vessel"
    AIRCRAFT = "aircraft"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One listed party, as published: public data of the list, never a player's.

    `addresses`: `<currency>:<address>` (e.g. `XBT:1A1zP1...`), the list's digital currency addresses;
    `birth_dates`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, as precise as the list is.
    """

    uid: str
    kind: EntryKind
    names: tuple[str, ...]  # the primary name first, then the aliases
    addresses: tuple[str, ...] = ()
    birth_dates: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.names[0] if self.names else ""


@dataclass(frozen=True, slots=True)
class SanctionsList:
    """A parsed list file: who published it when, and its entries."""

    source: str
    published_at: datetime
    entries: tuple[ListEntry, ...]


def list_version(published_at: datetime, sha256: str) -> str:
    """The version recorded on every decision: the publisher's date and the file's digest (two files of one day
    are told apart, and the same file fetched twice is one version)."""
    return f"{published_at:%Y-%m-%d}+{sha256[:12]}"


# -- spellings -------------------------------------------------------------------------------------------------


def destination_spellings(kind: DestinationType, address: str) -> set[str]:
    """Every spelling a destination is looked up in: its own (`destination_spelling`), and the spellings a listed
    address gets (`listed_spellings`). A rail that pays a TON wallet as a `crypto_address` (an exchange's USDT on
    TON) meets a listed wallet in any of its forms (bounceable, non-bounceable, test-only, raw)."""
    return {destination_spelling(kind, address), *listed_spellings(address)}


def listed_spellings(address: str) -> set[str]:
    """Every spelling a listed address can be met in: the destinations' one spelling (raw when it is a TON
    address), and folded as written (a list may publish a TON address no parser accepts)."""
    return {destination_spelling(DestinationType.CRYPTO_ADDRESS, address), "".join(address.split()).casefold()}


_EVM_HEX = re.compile(r"[0-9a-fA-F]{40}")


def memo_tokens(memo: str) -> set[str]:
    """Every address-shaped token a memo carries: each run of it from a letter or digit to a cut, a cut being the
    memo's end or either side of any other character. So `=:ETH.ETH:0xAbC…:0/1/0` (a swap router's memo) carries
    `0xAbC…`, `bitcoin:bc1q…?amount=1` carries `bc1q…`, and a TON address in its base64 forms (whose `-`, `_`, `+`,
    `/` are letters of it) is one run among the others; an EVM address written without `0x` is also read with it.
    A memo is at most 64 characters (`PayoutDestination.memo`): a few hundred runs at the very most."""
    text = memo.strip()
    cuts = [i for i in range(len(text) + 1) if i in (0, len(text)) or not (text[i - 1].isalnum() and text[i].isalnum())]
    tokens = {text[a:b] for a in cuts if a < len(text) and text[a].isalnum() for b in cuts if b > a}
    tokens.add(text)
    tokens |= {"0x" + t for t in tokens if _EVM_HEX.fullmatch(t)}
    return {t for t in tokens if t}


def screened_spellings(destination: PayoutDestination) -> list[tuple[str, str]]:
    """(spelling, how it was found) for every spelling a destination is screened in: its address's ("address")
    first, then, for a type whose rail reads the memo (`MEMO_TYPES`), each address-shaped token of the memo
    ("memo"). A memo a rail reads says where the money ends up (a swap router's recipient, an exchange's
    sub-account), so a listed wallet named there is paid as surely as one in the address."""
    found = dict.fromkeys(destination_spellings(destination.type, destination.address), "address")
    if destination.type in MEMO_TYPES and destination.memo:
        for token in memo_tokens(destination.memo):
            for spelling in listed_spellings(token):
                found.setdefault(spelling, "memo")
    return sorted(found.items(), key=lambda sv: (sv[1] != "address", sv[0]))


# Letters NFKD does not decompose into a base letter and a mark.
_FOLD = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i", "ħ": "h", "ŧ": "t"}  # noqa: RUF001 - the dotless i is the point
)
_APOSTROPHES = re.compile("['`\u00b4\u02bc\u02bb\u2019\u2018]")  # the apostrophes names are written with
_SEPARATORS = re.compile(r"[\W_]+")


# Spellings one sound gets from different transliterations (Cyrillic, Arabic, Persian into English, French,
# German): folded to one on both sides, so Dzhamshid meets Jamshid and Youssef meets Yusef.
_SOUNDS = (
    ("dzh", "j"),
    ("dj", "j"),
    ("zh", "j"),
    ("tch", "sh"),
    ("sch", "sh"),
    ("ch", "sh"),
    ("kh", "h"),
    ("ph", "f"),
    ("ck", "k"),
    ("q", "k"),
    ("w", "v"),
    ("ou", "u"),
    ("oo", "u"),
    ("ee", "i"),
    ("ie", "i"),
    ("y", "i"),
    ("e", "i"),
)
_DOUBLED = re.compile(r"(.)\1+")


def _sound(token: str) -> str:
    for old, new in _SOUNDS:
        token = token.replace(old, new)
    return _DOUBLED.sub(r"\1", token)


def name_tokens(name: str) -> tuple[str, ...]:
    """A name's tokens: accents stripped, case folded, punctuation a separator (apostrophes dropped),
    transliteration variants folded to one spelling, in order."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold().translate(_FOLD)
    text = _APOSTROPHES.sub("", text)
    return tuple(_sound(t) for t in _SEPARATORS.split(text) if t)


def normalise_name(name: str) -> str:
    """The order-insensitive form of a name: its tokens sorted."""
    return " ".join(sorted(name_tokens(name)))


# -- similarity ------------------------------------------------------------------------------------------------


def jaro_winkler(a: str, b: str, *, prefix_weight: float = 0.1) -> float:
    """Jaro-Winkler similarity in [0, 1]."""
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    window = max(max(la, lb) // 2 - 1, 0)
    b_used = [False] * lb
    a_matched: list[str] = []
    for i, ch in enumerate(a):
        lo, hi = max(0, i - window), min(lb, i + window + 1)
        for j in range(lo, hi):
            if not b_used[j] and b[j] == ch:
                b_used[j] = True
                a_matched.append(ch)
                break
    m = len(a_matched)
    if not m:
        return 0.0
    b_matched = [b[j] for j in range(lb) if b_used[j]]
    transpositions = sum(1 for x, y in zip(a_matched, b_matched, strict=True) if x != y) / 2
    jaro = (m / la + m / lb + (m - transpositions) / m) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * prefix_weight * (1 - jaro)


def levenshtein_similarity(a: str, b: str) -> float:
    """1 - edit distance / the longer length."""
    if a == b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b))


@lru_cache(maxsize=1 << 16)  # token pairs repeat (first names): ~10 MB at most
def token_similarity(a: str, b: str) -> float:
    """Jaro-Winkler tempered by edit distance: Winkler's bonus for a shared beginning alone would make two
    surnames of one root (Radulovic, Radulmievic) look like one misspelt; edit distance alone would make a
    transposed pair look far. Below `TOKEN_FLOOR` on Jaro-Winkler the edits are not even counted."""
    jw = jaro_winkler(a, b)
    if jw < TOKEN_FLOOR or jw == 1.0:
        return jw
    return (jw + levenshtein_similarity(a, b)) / 2


TOKEN_FLOOR = 0.82  # two tokens below this similarity are different words
UNMATCHED_TOKEN_FACTOR = 0.95  # each listed token the person's name lacks (a middle name) costs this much


def _aligned(query: Sequence[str], listed: Sequence[str]) -> float:
    """Tokens paired greedily by similarity: the share of the shorter name's letters matched, less a little for
    each token of the longer name left over. One matched token of several is no match (a shared surname)."""
    short, long_ = (query, listed) if len(query) <= len(listed) else (listed, query)
    if len(short) == 1 and len(long_) > 1:
        return 0.0
    pairs = sorted(
        ((token_similarity(s, t), i, j) for i, s in enumerate(short) for j, t in enumerate(long_)),
        reverse=True,
    )
    used_s: set[int] = set()
    used_l: set[int] = set()
    total = 0.0
    for sim, i, j in pairs:
        if sim < TOKEN_FLOOR:
            break
        if i in used_s or j in used_l:
            continue
        used_s.add(i)
        used_l.add(j)
        total += sim * len(short[i])
    if len(used_s) < len(short):
        return 0.0  # a token of the shorter name matches nothing: a different person
    letters = sum(len(t) for t in short)
    return total / letters * UNMATCHED_TOKEN_FACTOR ** (len(long_) - len(used_l))


def _merged(tokens: Sequence[str]) -> list[tuple[str, ...]]:
    """The token lists with two neighbours written as one ("Abdul Rahman" / "Abdulrahman")."""
    return [(*tokens[:i], tokens[i] + tokens[i + 1], *tokens[i + 2 :]) for i in range(len(tokens) - 1)]


def name_score(query: Sequence[str], listed: Sequence[str]) -> int:
    """0-1000: how alike two tokenised names are, whatever their tokens' order: tokens paired by Jaro-Winkler
    similarity (`_aligned`), and the same with two neighbouring tokens of the longer name written as one."""
    if not query or not listed:
        return 0
    best = _aligned(query, listed)
    if len(query) > len(listed):
        best = max([best, *(_aligned(q, listed) for q in _merged(query))])
    elif len(listed) > len(query):
        best = max([best, *(_aligned(query, t) for t in _merged(listed))])
    return round(best * MAX_SCORE)


def _dob_compatible(listed: str, born: date) -> bool:
    parts = listed.split("-")
    try:
        if int(parts[0]) != born.year:
            return False
        if len(parts) > 1 and int(parts[1]) != born.month:
            return False
        return not (len(parts) > 2 and int(parts[2]) != born.day)
    except ValueError:
        return True  # a date the list spells oddly proves nothing


_VOWELS = str.maketrans("", "", "aeiouy")


def _keys(token: str) -> set[str]:
    """Blocking keys of a token: its first and last three letters and its consonant skeleton's first four
    (Mohammed and Muhammad share `mhmd`): a misspelt token still shares one of them with the listed one."""
    if len(token) < 2:
        return set()
    keys = {"p:" + token[:3], "s:" + token[-3:]}
    skeleton = re.sub(r"(.)\1+", r"\1", token.translate(_VOWELS))
    if len(skeleton) >= 2:
        keys.add("k:" + skeleton[:4])
    return keys


@dataclass(frozen=True, slots=True)
class Hit:
    """One matched entry: its list id, its primary name, how it matched and how strongly (0-1000)."""

    uid: str
    entry_name: str
    kind: str  # "address" or "name"
    score: int


@dataclass(slots=True)
class ListIndex:
    """One loaded list, indexed: addresses by spelling, names by blocking key."""

    entries: tuple[ListEntry, ...]
    _addresses: dict[str, list[int]] = field(default_factory=dict)
    _names: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    _blocks: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: Iterable[ListEntry]) -> ListIndex:
        index = cls(tuple(entries))
        for n, entry in enumerate(index.entries):
            for published in entry.addresses:
                _, _, address = published.partition(":")
                for spelling in listed_spellings(address or published):
                    index._addresses.setdefault(spelling, []).append(n)
            if entry.kind in (EntryKind.VESSEL, EntryKind.AIRCRAFT):
                continue  # a person is never a ship
            for name in entry.names:
                tokens = name_tokens(name)
                if not tokens:
                    continue
                record = len(index._names)
                index._names.append((n, tokens))
                for key in {k for t in tokens for k in _keys(t)}:
                    index._blocks.setdefault(key, []).append(record)
        return index

    def match_address(self, spelling: str) -> list[Hit]:
        return [
            Hit(self.entries[n].uid, self.entries[n].name, "address", MAX_SCORE)
            for n in dict.fromkeys(self._addresses.get(spelling, ()))
        ]

    def match_name(
        self,
        names: Iterable[str],
        *,
        threshold: int,
        born: date | None = None,
        individuals_only: bool = True,
    ) -> list[Hit]:
        """Every entry one of `names` matches at `threshold` or above, its best score, strongest first."""
        best: dict[int, int] = {}
        for name in names:
            tokens = name_tokens(name)
            if not tokens:
                continue
            # A listed name is a candidate when each of the shorter name's tokens shares a key with it: every
            # token must match for a name to match (`_aligned`), so this loses nothing a misspelling keeps.
            shared_by: dict[int, int] = {}
            for token in dict.fromkeys(tokens):
                records: set[int] = set()
                for key in _keys(token):
                    records.update(self._blocks.get(key, ()))
                for record in records:
                    shared_by[record] = shared_by.get(record, 0) + 1
            for record, shared in shared_by.items():
                n, listed = self._names[record]
                if shared < min(len(set(tokens)), len(set(listed))):
                    continue
                entry = self.entries[n]
                if individuals_only and entry.kind is not EntryKind.INDIVIDUAL:
                    continue
                score = name_score(tokens, listed)
                if (
                    born is not None
                    and entry.birth_dates
                    and not any(_dob_compatible(d, born) for d in entry.birth_dates)
                ):
                    score -= DOB_MISMATCH_PENALTY
                if score >= threshold and score > best.get(n, -1):
                    best[n] = score
        hits = [Hit(self.entries[n].uid, self.entries[n].name, "name", s) for n, s in best.items()]
        return sorted(hits, key=lambda h: (-h.score, h.uid))

    def __len__(self) -> int:
        return len(self.entries)


def screen_destination_in(index: ListIndex, destination: PayoutDestination) -> list[Hit]:
    """Every entry the destination's address or its memo's addresses match (`screened_spellings`), once each; a
    match through the memo is of kind "memo" (unless the address matched the same entry)."""
    found: dict[str, Hit] = {}
    for spelling, via in screened_spellings(destination):
        for hit in index.match_address(spelling):
            found.setdefault(hit.uid, hit if via == "address" else replace(hit, kind=via))
    return list(found.values())


__all__ = [
    "DOB_MISMATCH_PENALTY",
    "MAX_SCORE",
    "SOURCES",
    "EntryKind",
    "Hit",
    "ListEntry",
    "ListIndex",
    "SanctionsList",
    "destination_spelling",
    "destination_spellings",
    "jaro_winkler",
    "list_version",
    "listed_spellings",
    "memo_tokens",
    "name_score",
    "name_tokens",
    "normalise_name",
    "screen_destination_in",
    "screened_spellings",
]
