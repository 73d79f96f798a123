"""The emulated publishers: each list served at a path shaped like its official one, from the fixture files, a new
version published on demand (`POST /_emulator/lists/<source>/entries`, tests), and a publisher failing on purpose
(the kit's faults: `POST /_emulator/faults`). `PUT /_emulator/lists/<source>/file` serves the request's bytes as they
are instead (what a compromised publisher, mirror or cache could serve: another encoding, a DTD), until the next
published entry."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike

# Paths shaped like the publishers' own (OFAC's SDN and consolidated XML, the EU's FSF full list, the UN's list).
PATHS = {
    "ofac_sdn": "/ofac/downloads/sdn.xml",
    "ofac_consolidated": "/ofac/downloads/consolidated/consolidated.xml",
    "eu": "/eu/fsf/public/files/xmlFullSanctionsList_1_1/content",
    "un": "/un/resources/xml/en/consolidated.xml",
}
FIXTURES = {"ofac_sdn": "sdn.xml", "ofac_consolidated": "consolidated.xml", "eu": "eu.xml", "un": "un.xml"}
# Addresses of the OFAC SDN fixture that the local stack's rails can be asked to pay (tools/devstack, tests).
KNOWN = {
    "stellar_account": "GCMMIDFNBRB2GLBQSRCJFZK74DO352UEUW5PA63IIIU4FKFPMG5VUOJQ",
    "ton_wallet": "UQBp4MMLFpzSe5t3EugHZonZFMyWl9owGKQiDaiaC-zuO5ZB",
}
MAX_ENTRY_FIELD = 200
FAULT_KINDS = (
    FaultKind.CONNECTION_RESET,  # the download cut before it starts
    FaultKind.RATE_LIMIT,  # 429
    FaultKind.SERVER_ERROR,  # 503: the publisher is down
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # the list held back `delay_ms`
    FaultKind.DROP_AFTER_SUCCESS,  # the connection cut instead of the list
)


@dataclass
class Published:
    source: str
    body: str
    versions: int = 1
    added: list[str] = field(default_factory=list)
    raw: bytes | None = None  # served instead of `body` when set (`PUT .../file`)

    @property
    def data(self) -> bytes:
        return self.raw if self.raw is not None else self.body.encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class Emulator:
    def __init__(self) -> None:
        pkg = resources.files("prizeflow_sanctions_emulator") / "fixtures"
        self.lists = {s: Published(s, (pkg / name).read_text(encoding="utf-8")) for s, name in FIXTURES.items()}
        self._next_uid = 900_000
        self.faults = Faults(FAULT_KINDS)
        self.requests: RequestLog[RequestEntry] = RequestLog()

    def publish(self, source: str, entry: dict[str, Any]) -> dict[str, Any]:
        """A new version of `source` with `entry` added, dated a day after the one before."""
        current = self.lists[source]
        self._next_uid += 1
        uid = str(entry.get("uid") or self._next_uid)
        body = _ADD[source](current.body, uid, entry)
        body = _redate(source, body, current.versions)
        self.lists[source] = Published(source, body, current.versions + 1, [*current.added, uid])
        return {"source": source, "uid": uid, "version": current.versions + 1, "sha256": self.lists[source].sha256}

    def serve_file(self, source: str, data: bytes) -> dict[str, Any]:
        """`data` served as `source`'s file from now on, byte for byte (the last published body stays underneath)."""
        current = self.lists[source]
        self.lists[source] = Published(source, current.body, current.versions + 1, current.added, raw=data)
        return {"source": source, "version": current.versions + 1, "sha256": self.lists[source].sha256}


EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


def _names(entry: dict[str, Any]) -> tuple[str, list[str]]:
    name = str(entry.get("name", "")).strip()
    aliases = [str(a).strip() for a in entry.get("aliases", []) if str(a).strip()]
    return name, aliases


def _ofac_add(body: str, uid: str, entry: dict[str, Any]) -> str:
    name, aliases = _names(entry)
    first, _, last = name.rpartition(" ") if entry.get("kind", "individual") == "individual" else ("", "", name)
    parts = [f"  <sdnEntry>\n    <uid>{escape(uid)}</uid>\n"]
    if first:
        parts.append(f"    <firstName>{escape(first)}</firstName>\n")
    parts.append(f"    <lastName>{escape(last)}</lastName>\n")
    parts.append(
        f"    <sdnType>{'Individual' if entry.get('kind', 'individual') == 'individual' else 'Entity'}</sdnType>\n"
    )
    parts.append("    <programList>\n      <program>CYBER2</program>\n    </programList>\n")
    if aliases:
        parts.append("    <akaList>\n")
        for k, alias in enumerate(aliases):
            parts.append(
                f"      <aka>\n        <uid>{escape(uid)}{k}</uid>\n        <type>a.k.a.</type>\n"
                f"        <category>strong</category>\n        <lastName>{escape(alias)}</lastName>\n      </aka>\n"
            )
        parts.append("    </akaList>\n")
    addresses = entry.get("addresses", [])
    if addresses:
        parts.append("    <idList>\n")
        for k, a in enumerate(addresses):
            parts.append(
                f"      <id>\n        <uid>{escape(uid)}{k}</uid>\n"
                f"        <idType>Digital Currency Address - {escape(str(a['currency']).upper())}</idType>\n"
                f"        <idNumber>{escape(str(a['address']))}</idNumber>\n      </id>\n"
            )
        parts.append("    </idList>\n")
    if entry.get("birth_date"):
        born = datetime.strptime(str(entry["birth_date"]), "%Y-%m-%d")  # noqa: DTZ007 - a calendar date
        parts.append(
            "    <dateOfBirthList>\n      <dateOfBirthItem>\n"
            f"        <uid>{escape(uid)}9</uid>\n        <dateOfBirth>{born:%d %b %Y}</dateOfBirth>\n"
            "        <mainEntry>true</mainEntry>\n      </dateOfBirthItem>\n    </dateOfBirthList>\n"
        )
    parts.append("  </sdnEntry>\n")
    body = body.replace("</sdnList>", "".join(parts) + "</sdnList>")
    return re.sub(
        r"<Record_Count>(\d+)</Record_Count>", lambda m: f"<Record_Count>{int(m.group(1)) + 1}</Record_Count>", body
    )


def _eu_add(body: str, uid: str, entry: dict[str, Any]) -> str:
    name, aliases = _names(entry)
    person = entry.get("kind", "individual") == "individual"
    parts = [
        f'  <sanctionEntity designationDetails="" unitedNationId="" euReferenceNumber="EU.0.{escape(uid)}" '
        f"logicalId={quoteattr(uid)}>\n"
        f'    <subjectType code="{"person" if person else "enterprise"}" '
        f'classificationCode="{"P" if person else "E"}"/>\n'
    ]
    for k, n in enumerate([name, *aliases]):
        parts.append(
            f'    <nameAlias firstName="" middleName="" lastName="" wholeName={quoteattr(n)} function="" gender="" '
            f'title="" nameLanguage="" strong="true" regulationLanguage="en" logicalId="{escape(uid)}{k}"/>\n'
        )
    if entry.get("birth_date"):
        born = str(entry["birth_date"])
        parts.append(
            f'    <birthdate circa="false" calendarType="GREGORIAN" birthdate={quoteattr(born)} year="{born[:4]}"/>\n'
        )
    parts.append("  </sanctionEntity>\n")
    return body.replace("</export>", "".join(parts) + "</export>")


def _un_add(body: str, uid: str, entry: dict[str, Any]) -> str:
    name, aliases = _names(entry)
    person = entry.get("kind", "individual") == "individual"
    tag = "INDIVIDUAL" if person else "ENTITY"
    first, _, rest = name.partition(" ")
    alias_xml = "".join(
        f"      <{tag}_ALIAS>\n        <QUALITY>Good</QUALITY>\n        <ALIAS_NAME>{escape(a)}</ALIAS_NAME>\n"
        f"      </{tag}_ALIAS>\n"
        for a in aliases
    )
    if person:
        dob = (
            f"      <INDIVIDUAL_DATE_OF_BIRTH>\n        <TYPE_OF_DATE>EXACT</TYPE_OF_DATE>\n"
            f"        <DATE>{escape(str(entry['birth_date']))}</DATE>\n      </INDIVIDUAL_DATE_OF_BIRTH>\n"
            if entry.get("birth_date")
            else ""
        )
        xml = (
            f"    <INDIVIDUAL>\n      <DATAID>{escape(uid)}</DATAID>\n      <VERSIONNUM>1</VERSIONNUM>\n"
            f"      <FIRST_NAME>{escape(first)}</FIRST_NAME>\n      <SECOND_NAME>{escape(rest)}</SECOND_NAME>\n"
            f"{alias_xml}{dob}    </INDIVIDUAL>\n"
        )
        return body.replace("  </INDIVIDUALS>", xml + "  </INDIVIDUALS>")
    xml = (
        f"    <ENTITY>\n      <DATAID>{escape(uid)}</DATAID>\n      <VERSIONNUM>1</VERSIONNUM>\n"
        f"      <FIRST_NAME>{escape(name)}</FIRST_NAME>\n{alias_xml}    </ENTITY>\n"
    )
    return body.replace("  </ENTITIES>", xml + "  </ENTITIES>")


_ADD = {"ofac_sdn": _ofac_add, "ofac_consolidated": _ofac_add, "eu": _eu_add, "un": _un_add}


def _redate(source: str, body: str, versions: int) -> str:
    """The new version is dated a day later than the fixture per version published (unique per version)."""
    day = datetime(2026, 11, 21, tzinfo=UTC) + timedelta(days=versions)
    if source.startswith("ofac"):
        return re.sub(r"<Publish_Date>[^<]*</Publish_Date>", f"<Publish_Date>{day:%m/%d/%Y}</Publish_Date>", body)
    attr = "generationDate" if source == "eu" else "dateGenerated"
    return re.sub(rf'{attr}="[^"]*"', f'{attr}="{day:%Y-%m-%dT%H:%M:%S}.000Z"', body, count=1)


def _valid_entry(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AdminError("a JSON object is expected")
    name = data.get("name")
    addresses = data.get("addresses", [])
    if not (isinstance(name, str) and 0 < len(name) <= MAX_ENTRY_FIELD) and not addresses:
        raise AdminError("`name` (1-200 characters) or `addresses` is required")
    if data.get("kind", "individual") not in ("individual", "entity"):
        raise AdminError("`kind` is individual or entity")
    if not isinstance(addresses, list) or not all(
        isinstance(a, dict) and isinstance(a.get("currency"), str) and isinstance(a.get("address"), str)
        for a in addresses
    ):
        raise AdminError("`addresses` is a list of {currency, address}")
    born = data.get("birth_date")
    if born is not None and not (isinstance(born, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", born)):
        raise AdminError("`birth_date` is YYYY-MM-DD")
    return data


def create_app(emulator: Emulator | None = None) -> web.Application:
    emu = emulator or Emulator()
    app = web.Application()

    def serve(source: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            entry = emu.requests.record(RequestEntry(request.method, request.path))

            async def carry_out() -> web.StreamResponse:
                published = emu.lists[source]
                return web.Response(
                    body=published.data, content_type="application/xml",
                    headers={"etag": f'"{published.sha256}"'},
                )  # fmt: skip

            return await strike(emu.faults.take(request.method, request.path), request, carry_out, _refusal, entry)

        return handler

    def add(request: web.Request, body: dict[str, Any]) -> Any:
        source = request.match_info["source"]
        if source not in emu.lists:
            raise AdminError(f"no list {source}", status=404)
        return web.json_response(emu.publish(source, _valid_entry(body)), status=201)

    def lists(_request: web.Request, _body: dict[str, Any]) -> Any:
        return [
            {"source": s, "path": PATHS[s], "version": p.versions, "sha256": p.sha256, "added": p.added}
            for s, p in emu.lists.items()
        ]

    for source, path in PATHS.items():
        app.router.add_get(path, serve(source))
    admin = Admin()
    admin.route("GET", "/lists", lists)
    admin.route("POST", "/lists/{source}/entries", add)
    admin.faults(emu.faults)
    admin.requests(emu.requests)
    admin.install(app)

    async def put_file(request: web.Request) -> web.Response:
        """Raw bytes, not a JSON body: outside the kit's JSON admin routes, under its prefix."""
        source = request.match_info["source"]
        if source not in emu.lists:
            return web.json_response({"error": f"no list {source}"}, status=404)
        return web.json_response(emu.serve_file(source, await request.read()), status=201)

    app.router.add_put("/_emulator/lists/{source}/file", put_file)
    app[EMULATOR] = emu
    return app


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return web.Response(status=429, text="Too Many Requests")
    return web.Response(status=503, text="Service Unavailable")


__all__ = ["EMULATOR", "FAULT_KINDS", "KNOWN", "PATHS", "Emulator", "create_app"]
