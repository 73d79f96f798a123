"""Sanctions lists: each official format read from the emulator's fixtures, what is refused, the spellings and the
name matcher, the screen's fail-closed contract, and the bench's false-positive bound at the default threshold."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import pytest
from compliance_fakes import MemorySanctionsLists

from prizeflow_compliance.application.ports import Identity, ScreeningUnavailable
from prizeflow_compliance.application.sanctions import (
    ListFetchError,
    ListsScreen,
    ListVersion,
    RefreshSanctionsLists,
    ScheduledRefresh,
)
from prizeflow_compliance.domain.sanctions import (
    EntryKind,
    ListEntry,
    ListIndex,
    destination_spelling,
    jaro_winkler,
    list_version,
    name_score,
    name_tokens,
    normalise_name,
)
from prizeflow_compliance.domain.sanctions_formats import ListFormatError, ofac_birth_dates, parse_list
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_payouts.domain.deny import DenyList
from prizeflow_payouts.settings import sanctions_sources
from prizeflow_runtime.jobs import Scheduler
from prizeflow_ton.addresses import parse_address

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tools" / "sanctions-emulator" / "src" / "prizeflow_sanctions_emulator" / "fixtures"
BENCH = ROOT / "services" / "payouts" / "bench" / "bench_screening.py"
FILES = {"ofac_sdn": "sdn.xml", "ofac_consolidated": "consolidated.xml", "eu": "eu.xml", "un": "un.xml"}
KNOWN_STELLAR = "GCMMIDFNBRB2GLBQSRCJFZK74DO352UEUW5PA63IIIU4FKFPMG5VUOJQ"
KNOWN_TON = "UQBp4MMLFpzSe5t3EugHZonZFMyWl9owGKQiDaiaC-zuO5ZB"


def fixture(source: str) -> bytes:
    return (FIXTURES / FILES[source]).read_bytes()


# -- formats ---------------------------------------------------------------------------------------------------


def test_ofac_sdn_names_addresses_and_dates() -> None:
    parsed = parse_list("ofac_sdn", fixture("ofac_sdn"))
    assert parsed.published_at == datetime(2026, 11, 21, tzinfo=UTC)
    assert len(parsed.entries) == 180
    currencies = {a.split(":", 1)[0] for e in parsed.entries for a in e.addresses}
    assert {"XBT", "ETH", "USDT", "TRX", "XMR", "XLM", "TON"} <= currencies
    assert any(a == f"XLM:{KNOWN_STELLAR}" for e in parsed.entries for a in e.addresses)
    person = next(e for e in parsed.entries if e.uid == "40007")
    assert person.kind is EntryKind.INDIVIDUAL
    assert person.names == ("Dragan Al-Zubaidan", "Dragan Nakagawara")
    assert person.birth_dates == ("1953",)


def test_ofac_consolidated_eu_and_un() -> None:
    consolidated = parse_list("ofac_consolidated", fixture("ofac_consolidated"))
    assert consolidated.source == "ofac_consolidated"
    assert len(consolidated.entries) == 80
    eu = parse_list("eu", fixture("eu"))
    assert len(eu.entries) == 150
    assert eu.published_at.date() == date(2026, 11, 20)
    assert {e.kind for e in eu.entries} == {EntryKind.INDIVIDUAL, EntryKind.ENTITY}
    assert any(len(d) == 10 for e in eu.entries for d in e.birth_dates)
    un = parse_list("un", fixture("un"))
    assert len(un.entries) == 120
    assert un.published_at == datetime(2026, 11, 19, 0, 0, 4, 221000, tzinfo=UTC)
    individual = next(e for e in un.entries if e.kind is EntryKind.INDIVIDUAL and len(e.names) > 1)
    assert individual.birth_dates


@pytest.mark.parametrize(
    ("text", "dates"),
    [
        ("05 Feb 1960", ["1960-02-05"]),
        ("Feb 1960", ["1960-02"]),
        ("1960", ["1960"]),
        ("circa 1960", ["1960"]),
        ("1958 to 1960", ["1958", "1959", "1960"]),
        ("unknown", []),
    ],
)
def test_ofac_dates_of_birth(text: str, dates: list[str]) -> None:
    assert ofac_birth_dates(text) == dates


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<sdnList><publshInformation><Publish_Date>11/21/2026</Publish_Date></publshInformation>
<sdnEntry><uid>1</uid><lastName>&lol2;</lastName><sdnType>Entity</sdnType></sdnEntry></sdnList>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><export generationDate="2026-01-01"/>"""


@pytest.mark.parametrize(
    ("source", "data", "why"),
    [
        ("ofac_sdn", BOMB, "DTD"),
        ("eu", EXTERNAL, "DTD"),
        ("ofac_sdn", fixture("ofac_sdn")[:5000], "well-formed"),
        ("ofac_sdn", fixture("eu"), "not <sdnList>"),
        (
            "un",
            b'<CONSOLIDATED_LIST dateGenerated="2026-11-19T00:00:00Z"><INDIVIDUALS/></CONSOLIDATED_LIST>',
            "no entries",
        ),
        ("eu", b'<export><sanctionEntity logicalId="1"><nameAlias wholeName="X"/></sanctionEntity></export>', "date"),
        (
            "ofac_sdn",
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><sdnList/>'.encode("utf-16-le"),
            "DTD",
        ),
        ("nobody", b"<x/>", "no parser"),
    ],
)
def test_untrustworthy_files_are_refused_whole(source: str, data: bytes, why: str) -> None:
    with pytest.raises(ListFormatError, match=why):
        parse_list(source, data)


def test_an_id_twice_is_refused() -> None:
    entry = "<sdnEntry><uid>7</uid><lastName>A B</lastName><sdnType>Entity</sdnType></sdnEntry>"
    head = "<sdnList><publshInformation><Publish_Date>11/21/2026</Publish_Date></publshInformation>"
    data = f"{head}{entry}{entry}</sdnList>"
    with pytest.raises(ListFormatError, match="twice"):
        parse_list("ofac_sdn", data.encode())


# -- spellings and names ---------------------------------------------------------------------------------------


def test_destination_spelling_is_the_deny_lists() -> None:
    ton = parse_address(KNOWN_TON)
    for kind, address in [
        (DestinationType.TON_WALLET, ton.raw),
        (DestinationType.TON_WALLET, ton.friendly(bounceable=True)),
        (DestinationType.CRYPTO_ADDRESS, " 0xAbC0000000000000000000000000000000000001 "),
        (DestinationType.STELLAR_ACCOUNT, KNOWN_STELLAR),
    ]:
        deny = DenyList.parse([f"{kind.value}:{address}"])
        assert deny.entries == frozenset({(kind, destination_spelling(kind, address))})


def test_names_fold_accents_case_punctuation_and_transliteration() -> None:
    assert name_tokens("José  O'Brien-García") == name_tokens("JOSE OBRIEN GARCIA")
    assert normalise_name("Al-Rashid, Mohammed") == normalise_name("Mohammed Al Rashid")
    assert name_tokens("Dzhamshid Yusupov") == name_tokens("Jamshid Iusupov")
    assert name_tokens("Łukasz Søren") == name_tokens("lukasz soren")


def test_similarity() -> None:
    assert jaro_winkler("martha", "marhta") == pytest.approx(0.9611, abs=1e-4)
    assert jaro_winkler("", "x") == 0.0
    assert name_score(name_tokens("Dragan Al-Zubaidan"), name_tokens("Al Zubaidan Dragan")) == 1000
    assert name_score(name_tokens("Dragan Zubaidan"), name_tokens("Dragan Milos Zubaidan")) >= 920
    assert name_score(name_tokens("Dragan Zubiadan"), name_tokens("Dragan Zubaidan")) >= 920
    assert name_score(name_tokens("Abdulrahman Haddad"), name_tokens("Abdul Rahman Haddad")) >= 920
    assert name_score(name_tokens("Dragan"), name_tokens("Dragan Zubaidan")) == 0  # one shared token is no match
    assert name_score(name_tokens("Jelena Radulovic"), name_tokens("Jelena Radulmievic")) < 920


ENTRIES = (
    ListEntry("1", EntryKind.INDIVIDUAL, ("Dragan Al-Zubaidan", "Dragan Nakagawara"), birth_dates=("1953-04-02",)),
    ListEntry("2", EntryKind.ENTITY, ("Vostok Shipping Commodities OOO",), addresses=(f"XLM:{KNOWN_STELLAR}",)),
    ListEntry("3", EntryKind.VESSEL, ("Dragan Al-Zubaidan",)),
    ListEntry("4", EntryKind.INDIVIDUAL, ("Kaveh Haddadin",), addresses=(f"TON:{KNOWN_TON}", "ETH:0xABCDEF00")),
)


def test_index_matches_names_and_dates_of_birth() -> None:
    index = ListIndex.build(ENTRIES)
    hits = index.match_name(["Dragan Nakagawara"], threshold=920)
    assert [(h.uid, h.entry_name, h.score) for h in hits] == [("1", "Dragan Al-Zubaidan", 1000)]
    assert index.match_name(["Dragan Al Zubaidan"], threshold=920, born=date(1953, 4, 2))[0].score == 1000
    assert not index.match_name(["Dragan Al Zubaidan"], threshold=920, born=date(1990, 1, 1))  # lowered by 150
    assert not index.match_name(["Vostok Shipping Commodities"], threshold=900)  # a person is never screened as a firm


def test_screen_fails_closed_until_every_configured_list_loaded() -> None:
    screen = ListsScreen(["ofac_sdn", "un"], threshold=920)
    destination = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KNOWN_STELLAR)
    with pytest.raises(ScreeningUnavailable) as err:
        screen.screen_destination(destination)
    assert err.value.missing == ("ofac_sdn", "un")
    now = datetime.now(UTC)
    for source in ("ofac_sdn", "un"):
        sha = source[0] * 64
        version = ListVersion(source, list_version(now, sha), now, now, sha, len(ENTRIES))
        with pytest.raises(ScreeningUnavailable):
            screen.screen_person(Identity(full_name="Dragan Al-Zubaidan"))
        screen.install(version, ListIndex.build(ENTRIES if source == "ofac_sdn" else ENTRIES[:1]), at=now)
    assert screen.ready
    result = screen.screen_destination(destination)
    assert [(m.source, m.entry_uid, m.kind, m.score) for m in result.matches] == [("ofac_sdn", "2", "address", 1000)]
    assert set(result.versions) == {"ofac_sdn", "un"}
    ton = parse_address(KNOWN_TON)
    for spelling in (ton.raw, ton.friendly(bounceable=True)):
        hit = screen.screen_destination(PayoutDestination(type=DestinationType.TON_WALLET, address=spelling))
        assert [m.entry_uid for m in hit.matches] == ["4"]
    eth = screen.screen_destination(PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address="0xabcdef00"))
    assert [m.entry_uid for m in eth.matches] == ["4"]
    person = screen.screen_person(Identity(full_name="Zubaidan, Dragan", birth_date=date(1953, 4, 2)))
    assert {(m.source, m.entry_uid) for m in person.matches} == {("ofac_sdn", "1"), ("un", "1")}
    assert person.hit
    assert not screen.screen_person(Identity(full_name="Nobody Known")).hit


def test_sources_setting() -> None:
    assert sanctions_sources(["un=https://example.org/un.xml"]) == {"un": "https://example.org/un.xml"}
    for bad in (["un"], ["nobody=https://x"], ["un=ftp://x"], ["un=https://a", "un=https://b"]):
        with pytest.raises(ValueError, match="sanctions source"):
            sanctions_sources(bad)


# -- measured --------------------------------------------------------------------------------------------------

FALSE_POSITIVE_BOUND = 0.06  # docs/capacity.md, Sanctions screening: 5.3% measured at 920
FALSE_NEGATIVE_BOUND = 0.08  # 6.0% measured at 920


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_screening", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_default_threshold_false_positives_stay_bounded(bench: ModuleType) -> None:
    from prizeflow_payouts.settings import PayoutsSettings

    default = PayoutsSettings.model_fields["payouts_sanctions_name_threshold"].default
    assert default == bench.DEFAULT_THRESHOLD
    index, players, variants = bench.load()
    fp, fn = bench.measure(index, players, variants, floor=default)[default]  # what scores below it cannot change
    assert fp < FALSE_POSITIVE_BOUND
    assert fn < FALSE_NEGATIVE_BOUND


# -- the schedule ----------------------------------------------------------------------------------------------


class FlakyPublishers:
    """The UN's server is down for its first two requests; every request is counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        source = url.removeprefix("https://lists.test/")
        self.calls.append(source)
        if source == "un" and self.calls.count("un") <= 2:
            raise ListFetchError("connection refused")
        return fixture(source)


async def test_the_schedule_asks_again_soon_only_for_lists_never_loaded() -> None:
    urls = {s: f"https://lists.test/{s}" for s in ("ofac_sdn", "un")}
    screen = ListsScreen(list(urls), threshold=920)
    publishers = FlakyPublishers()
    refresh = RefreshSanctionsLists(urls=urls, source=publishers, store=MemorySanctionsLists(), screen=screen)
    jobs = Scheduler()
    jobs.every(3600, ScheduledRefresh(refresh, every_s=3600, retry_s=0.01), name="sanctions-refresh")
    await jobs.start()
    try:
        async with asyncio.timeout(10):
            while not screen.ready:
                await asyncio.sleep(0.01)  # polling observable state, not waiting for an effect's time
    finally:
        await jobs.stop()
    assert publishers.calls == ["ofac_sdn", "un", "un", "un"]
    assert set(screen.versions()) == {"ofac_sdn", "un"}


class Publisher:
    """One source whose file the test swaps (a mirror or a CDN serving an older copy, a man in the middle)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        return self.data


async def test_a_file_older_than_the_stored_one_never_replaces_it() -> None:
    """A publisher (or a stale mirror) serving an older file must not roll the list back: entries added since would
    stop matching. It is refused, counted as an error, and the newer version stays loaded."""
    current = fixture("ofac_sdn")
    urls = {"ofac_sdn": "https://lists.test/ofac_sdn"}
    screen = ListsScreen(list(urls), threshold=920)
    publisher = Publisher(current)
    store = MemorySanctionsLists()
    refresh = RefreshSanctionsLists(urls=urls, source=publisher, store=store, screen=screen)
    [loaded] = await refresh.run()
    assert loaded.outcome == "loaded"
    newest = screen.versions()["ofac_sdn"]
    publisher.data = current.replace(b"11/21/2026", b"10/01/2026")  # the same entries, published earlier
    [stale] = await refresh.run()
    assert stale.outcome == "error"
    assert "older" in stale.detail
    assert screen.versions()["ofac_sdn"] == newest
    assert [v.version for v in store.versions.values()] == [newest]
    # A later file of the same source is still taken.
    publisher.data = current.replace(b"11/21/2026", b"11/22/2026")
    [later] = await refresh.run()
    assert later.outcome == "loaded"
    assert screen.versions()["ofac_sdn"].startswith("2026-11-22+")


def test_a_listed_ton_address_in_another_form_is_met_whatever_the_destination_type() -> None:
    """The exchange rail pays TON (e.g. USDT on TON) to a `crypto_address`: a listed TON wallet spelled
    bounceable, non-bounceable, testnet-flagged or raw is the same wallet and must match there too."""
    screen = ListsScreen(["ofac_sdn"], threshold=920)
    now = datetime.now(UTC)
    sha = "a" * 64
    screen.install(
        ListVersion("ofac_sdn", list_version(now, sha), now, now, sha, len(ENTRIES)), ListIndex.build(ENTRIES), at=now
    )
    ton = parse_address(KNOWN_TON)
    spellings = [
        ton.friendly(bounceable=True),
        ton.friendly(bounceable=False),
        ton.friendly(bounceable=True, test_only=True),
        ton.raw,
        ton.raw.upper(),
    ]
    for spelling in spellings:
        for kind in (DestinationType.CRYPTO_ADDRESS, DestinationType.TON_WALLET):
            hit = screen.screen_destination(PayoutDestination(type=kind, address=spelling))
            assert [m.entry_uid for m in hit.matches] == ["4"], (kind, spelling)


def test_a_destination_screened_before_a_list_changed_is_screened_again_against_the_new_one() -> None:
    """Screened destinations are remembered for the loaded lists only: the list that names the wallet, swapped
    in after the wallet was screened clear, is the one the next screening reads; and a remembered result still
    carries the versions it was made with."""
    screen = ListsScreen(["ofac_sdn"], threshold=920)
    destination = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KNOWN_STELLAR)
    now = datetime.now(UTC)
    clean = [e for e in ENTRIES if e.uid != "2"]
    first = ListVersion("ofac_sdn", list_version(now, "a" * 64), now, now, "a" * 64, len(clean))
    screen.install(first, ListIndex.build(clean), at=now)
    assert not screen.screen_destination(destination).matches
    again = screen.screen_destination(destination)
    assert (again.matches, again.versions) == ((), {"ofac_sdn": first.version})
    later = now.replace(year=now.year + 1)
    second = ListVersion("ofac_sdn", list_version(later, "b" * 64), later, later, "b" * 64, len(ENTRIES))
    screen.install(second, ListIndex.build(ENTRIES), at=later)
    hit = screen.screen_destination(destination)
    assert [m.entry_uid for m in hit.matches] == ["2"]
    assert hit.versions == {"ofac_sdn": second.version}


class PrunedStore(MemorySanctionsLists):
    """A version whose entries another replica pruned (or never fully wrote) between reading the newest version and
    reading its entries."""

    async def entries(self, source: str, version: str) -> Sequence[ListEntry]:
        return ()


async def test_a_version_read_back_without_its_entries_is_never_loaded() -> None:
    """An empty index screens everything clear: a version whose stored entries do not add up to its count stays
    out (the screen keeps failing closed until it is read back whole)."""
    urls = {"ofac_sdn": "https://lists.test/ofac_sdn"}
    screen = ListsScreen(list(urls), threshold=920)
    refresh = RefreshSanctionsLists(
        urls=urls, source=Publisher(fixture("ofac_sdn")), store=PrunedStore(), screen=screen
    )
    await refresh.run()
    assert screen.missing_sources == ("ofac_sdn",)
    with pytest.raises(ScreeningUnavailable):
        screen.screen_destination(PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KNOWN_STELLAR))


class CountingStore(MemorySanctionsLists):
    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    async def latest(self) -> list[ListVersion]:
        self.looks += 1
        return await super().latest()


async def test_a_catch_up_loads_what_another_replica_stored_and_looks_at_most_once_a_second() -> None:
    """Before a gate: a process behind loads the newest stored version; the look (one query) stands a second."""
    urls = {"ofac_sdn": "https://lists.test/ofac_sdn"}
    store = CountingStore()
    elsewhere = RefreshSanctionsLists(
        urls=urls, source=FlakyPublishers(), store=store, screen=ListsScreen(list(urls), threshold=920)
    )
    here = RefreshSanctionsLists(
        urls=urls, source=FlakyPublishers(), store=store, screen=ListsScreen(list(urls), threshold=920)
    )
    await elsewhere.run()  # another replica stores (and loads) the list; this one has loaded nothing
    assert here.screen.versions() == {}
    looks = store.looks
    await here.catch_up()
    assert here.screen.versions() == elsewhere.screen.versions()
    await here.catch_up()  # within the second: no look
    assert store.looks == looks + 1
    here._looked -= here.catch_up_s  # a second later
    await here.catch_up()
    assert store.looks == looks + 2
