# mypy: ignore-errors
# (a one-off script over loosely typed dicts; what it writes is checked by the emulator's and payouts' tests)
# ruff: noqa: E501, S311, PLR0911 - a one-off fixture writer: long literal lists, seeded (not secret) randomness
"""Write the emulator's fixture lists (`src/prizeflow_sanctions_emulator/fixtures/*.xml`): FICTIONAL parties in
the official published formats. Deterministic (one seed); run again only to change them:

    uv run --frozen python tools/sanctions-emulator/scripts/generate_fixtures.py

Every name is made up from name parts of several origins; every address is well-formed and made up (derived from
a hash). The OFAC SDN fixture lists digital currency addresses of several currencies, among them a Stellar account
and a TON wallet that the local stack's rails can be asked to pay (`KNOWN` in the emulator's `fixtures` module).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from xml.sax.saxutils import escape

from stellar_sdk import Keypair

from prizeflow_ton.addresses import parse_address

OUT = Path(__file__).resolve().parents[1] / "src" / "prizeflow_sanctions_emulator" / "fixtures"

FIRST = [
    "Oleksandr",
    "Dmitri",
    "Vasily",
    "Anatoly",
    "Grigor",
    "Yevgeny",
    "Kazimir",
    "Rustam",
    "Timur",
    "Bakhtiyar",
    "Farhad",
    "Kaveh",
    "Dariush",
    "Jamshid",
    "Abdelkrim",
    "Tarek",
    "Nabil",
    "Yassin",
    "Khalid",
    "Idris",
    "Hamza",
    "Faisal",
    "Marwan",
    "Qasim",
    "Zoran",
    "Dragan",
    "Milos",
    "Bogdan",
    "Radovan",
    "Joaquin",
    "Esteban",
    "Ramiro",
    "Anselmo",
    "Leandro",
    "Wei-Lun",
    "Jian",
    "Haoran",
    "Zhiwei",
    "Min-jun",
    "Seo-yeon",
    "Kwang-su",
    "Thanh",
    "Quoc",
    "Kwabena",
    "Chidi",
    "Oluwaseun",
    "Tendai",
    "Baraka",
    "Mirela",
    "Svetlana",
    "Ludmila",
    "Zarina",
    "Nargiz",
    "Leyla",
    "Amira",
    "Samira",
    "Yelena",
    "Inessa",
]
MIDDLE = [
    "Petrovich",
    "Ivanovna",
    "Aliyevich",
    "Karimovna",
    "Bin",
    "Ould",
    "Ibn",
    "Abu",
    "Maria",
    "Jose",
    "Luis",
    "Ana",
]
LAST = [
    "Volkravets",
    "Dumitrescanu",
    "Karabekov",
    "Zhelyabin",
    "Orlovsky",
    "Tarkhanov",
    "Semenyaka",
    "Brusilova",
    "Yermakhanov",
    "Gorshenin",
    "Al-Qaderi",
    "Al-Zubaidan",
    "Haddadin",
    "Bin-Sufyan",
    "Mansouri-Zadeh",
    "Tabrizian",
    "Farahmandi",
    "Jahangiri",
    "Kazemzadeh",
    "Obregon-Vidal",
    "Castellanos-Rey",
    "Villanueva-Ortiz",
    "Montalvo",
    "Urquidez",
    "Zhao-Lin",
    "Qiaoming",
    "Huangfeng",
    "Pyon-Kim",
    "Nakagawara",
    "Adeyemi-Cole",
    "Okonkwo-Bassey",
    "Mbatha-Zulu",
    "Radulovic",
    "Petrakovic",
    "Sokolinski",
    "Draganova",
    "Ilyushkin",
]
ENTITY_WORDS = [
    "Trading",
    "Logistics",
    "Maritime",
    "Petrochemical",
    "Holding",
    "Industrial",
    "Exchange",
    "Capital",
    "Mining",
    "Aviation",
    "Shipping",
    "Import",
    "Export",
    "Technical",
    "Commodities",
    "Engineering",
    "Finance",
    "Metals",
    "Energy",
]
ENTITY_TAILS = ["LLC", "Ltd", "JSC", "FZE", "SA", "GmbH", "Co.", "Limited", "OOO"]
PLACE = [
    "Vostok",
    "Zagros",
    "Andes",
    "Meridian",
    "Baltika",
    "Orinoco",
    "Tianshan",
    "Sahel",
    "Karakum",
    "Aral",
    "Caspian",
    "Levant",
    "Pamir",
]
PROGRAMS = ("SDGT", "CYBER2", "RUSSIA-EO14024", "IRAN-EO13902", "DPRK3", "VENEZUELA-EO13850", "ILLICIT-DRUGS-EO14059")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

rng = random.Random(20261125)


def digest(label: str) -> bytes:
    return hashlib.sha256(b"prizeflow-sanctions-fixture/" + label.encode()).digest()


def pick(alphabet: str, n: int, label: str) -> str:
    r = random.Random(digest(label))
    return "".join(r.choice(alphabet) for _ in range(n))


def address(currency: str, label: str) -> str:
    if currency == "XBT":
        return "bc1q" + pick(BECH32, 38, label) if digest(label)[0] % 2 else "1" + pick(B58, 33, label)
    if currency in ("ETH", "USDC", "ARB", "BSC"):
        return "0x" + digest(label)[:20].hex()
    if currency in ("USDT", "TRX"):
        return "T" + pick(B58, 33, label)
    if currency == "XMR":
        return "4" + pick(B58, 94, label)
    if currency == "LTC":
        return "ltc1q" + pick(BECH32, 38, label)
    if currency == "XLM":
        return Keypair.from_raw_ed25519_seed(digest(label)).public_key
    if currency == "TON":
        return parse_address("0:" + digest(label).hex()).friendly(bounceable=False)
    raise ValueError(currency)


def person(i: int) -> dict[str, object]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    middle = rng.choice(MIDDLE) if rng.random() < 0.35 else ""
    aliases = []
    if rng.random() < 0.6:
        aliases.append((rng.choice(FIRST), last))
    if rng.random() < 0.3:
        aliases.append((first, rng.choice(LAST)))
    year = rng.randint(1950, 1995)
    dob = (
        f"{rng.randint(1, 28):02d} {rng.choice(MONTHS)} {year}"
        if rng.random() < 0.7
        else (f"circa {year}" if rng.random() < 0.5 else str(year))
    )
    return {"kind": "individual", "first": _join(first, middle), "last": last, "aliases": aliases, "dob": dob, "i": i}


def entity(i: int) -> dict[str, object]:
    name = f"{rng.choice(PLACE)} {rng.choice(ENTITY_WORDS)} {rng.choice(ENTITY_WORDS)} {rng.choice(ENTITY_TAILS)}"
    aliases = [(None, name.rsplit(" ", 1)[0].upper())] if rng.random() < 0.4 else []
    return {"kind": "entity", "first": "", "last": name, "aliases": aliases, "dob": None, "i": i}


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def parties(n: int, label: str) -> list[dict[str, object]]:
    return [person(i) if rng.random() < 0.7 else entity(i) for i in range(n)] if label else []


def ofac(name: str, base_uid: int, n: int, date: str, with_crypto: bool) -> str:
    entries: list[str] = []
    currencies = ("XBT", "ETH", "USDT", "TRX", "XMR", "LTC", "USDC")
    for p in parties(n, name):
        uid = base_uid + int(p["i"]) * 7  # type: ignore[call-overload]
        ids: list[tuple[str, str]] = []
        if with_crypto and int(p["i"]) % 3 == 0:  # type: ignore[call-overload]
            for k in range(1 + int(p["i"]) % 2):  # type: ignore[call-overload]
                cur = currencies[(int(p["i"]) // 3 + k) % len(currencies)]  # type: ignore[call-overload]
                ids.append((f"Digital Currency Address - {cur}", address(cur, f"{name}/{uid}/{k}")))
        if with_crypto and int(p["i"]) == 10:
            ids.append(("Digital Currency Address - XLM", address("XLM", "known-stellar")))
        if with_crypto and int(p["i"]) == 13:
            ids.append(("Digital Currency Address - TON", address("TON", "known-ton")))
        entries.append(ofac_entry(uid, p, ids))
    return (
        '<?xml version="1.0" standalone="yes"?>\n'
        '<sdnList xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://tempuri.org/sdnList.xsd">\n'
        f"  <publshInformation>\n    <Publish_Date>{date}</Publish_Date>\n"
        f"    <Record_Count>{len(entries)}</Record_Count>\n  </publshInformation>\n" + "".join(entries) + "</sdnList>\n"
    )


def ofac_entry(uid: int, p: dict[str, object], ids: list[tuple[str, str]]) -> str:
    x = escape
    out = [f"  <sdnEntry>\n    <uid>{uid}</uid>\n"]
    if p["first"]:
        out.append(f"    <firstName>{x(str(p['first']))}</firstName>\n")
    out.append(f"    <lastName>{x(str(p['last']))}</lastName>\n")
    out.append(f"    <sdnType>{'Individual' if p['kind'] == 'individual' else 'Entity'}</sdnType>\n")
    out.append(f"    <programList>\n      <program>{rng.choice(PROGRAMS)}</program>\n    </programList>\n")
    aliases: list[tuple[str | None, str]] = p["aliases"]  # type: ignore[assignment]
    if aliases:
        out.append("    <akaList>\n")
        for k, (first, last) in enumerate(aliases):
            out.append(f"      <aka>\n        <uid>{uid * 10 + k}</uid>\n        <type>a.k.a.</type>\n")
            out.append("        <category>strong</category>\n")
            if first:
                out.append(f"        <firstName>{x(first)}</firstName>\n")
            out.append(f"        <lastName>{x(last)}</lastName>\n      </aka>\n")
        out.append("    </akaList>\n")
    if ids:
        out.append("    <idList>\n")
        for k, (kind, number) in enumerate(ids):
            out.append(f"      <id>\n        <uid>{uid * 100 + k}</uid>\n        <idType>{x(kind)}</idType>\n")
            out.append(f"        <idNumber>{x(number)}</idNumber>\n      </id>\n")
        out.append("    </idList>\n")
    if p["dob"]:
        out.append("    <dateOfBirthList>\n      <dateOfBirthItem>\n")
        out.append(f"        <uid>{uid * 10 + 9}</uid>\n        <dateOfBirth>{p['dob']}</dateOfBirth>\n")
        out.append("        <mainEntry>true</mainEntry>\n      </dateOfBirthItem>\n    </dateOfBirthList>\n")
    out.append("  </sdnEntry>\n")
    return "".join(out)


def _iso_dob(dob: str) -> tuple[str, str, str]:
    parts = dob.split()
    if len(parts) == 3:
        month = MONTHS.index(parts[1]) + 1
        return parts[2], f"{month}", parts[0]
    return parts[-1], "", ""


def eu(n: int) -> str:
    x = escape
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<export xmlns="http://eu.europa.ec/fpi/fsd/export" generationDate="2026-11-20T10:19:05.138+01:00" '
        'globalFileId="170123">\n'
    ]
    for p in parties(n, "eu"):
        logical = 130_000 + int(p["i"]) * 13  # type: ignore[call-overload]
        person_ = p["kind"] == "individual"
        out.append(
            f'  <sanctionEntity designationDetails="" unitedNationId="" euReferenceNumber="EU.{logical % 9000}.{logical % 97}" '
            f'logicalId="{logical}">\n'
            '    <regulation regulationType="amendment" organisationType="council" publicationDate="2026-10-02" '
            'programme="FICT" logicalId="1"/>\n'
            f'    <subjectType code="{"person" if person_ else "enterprise"}" '
            f'classificationCode="{"P" if person_ else "E"}"/>\n'
        )
        names = [(str(p["first"]), str(p["last"]))] + [(a or "", b) for a, b in p["aliases"]]  # type: ignore[attr-defined]
        for k, (first, last) in enumerate(names):
            if person_ and first:
                whole = _join(first, last)
                out.append(
                    f'    <nameAlias firstName="{x(first)}" middleName="" lastName="{x(last)}" '
                    f'wholeName="{x(whole)}" function="" gender="" title="" nameLanguage="" strong="true" '
                    f'regulationLanguage="en" logicalId="{logical * 10 + k}"/>\n'
                )
            else:
                out.append(
                    f'    <nameAlias firstName="" middleName="" lastName="" wholeName="{x(_join(first, last))}" '
                    f'function="" gender="" title="" nameLanguage="" strong="true" regulationLanguage="en" '
                    f'logicalId="{logical * 10 + k}"/>\n'
                )
        if p["dob"]:
            year, month, day = _iso_dob(str(p["dob"]))
            full = f"{year}-{int(month):02d}-{int(day):02d}" if day else ""
            circa = "true" if "circa" in str(p["dob"]) else "false"
            out.append(
                f'    <birthdate circa="{circa}" calendarType="GREGORIAN" city="" zipCode="" birthdate="{full}" '
                f'dayOfMonth="{day}" monthOfYear="{month}" year="{year}" region="" place="" countryIso2Code="00" '
                f'countryDescription="UNKNOWN" regulationLanguage="en" logicalId="{logical * 10 + 8}"/>\n'
            )
        out.append("  </sanctionEntity>\n")
    out.append("</export>\n")
    return "".join(out)


def un(n: int) -> str:
    x = escape
    individuals: list[str] = []
    entities: list[str] = []
    for p in parties(n, "un"):
        dataid = 6_900_000 + int(p["i"]) * 11  # type: ignore[call-overload]
        aliases = "".join(
            f"      <{'INDIVIDUAL' if p['kind'] == 'individual' else 'ENTITY'}_ALIAS>\n"
            f"        <QUALITY>Good</QUALITY>\n        <ALIAS_NAME>{x(_join(a or '', b).upper())}</ALIAS_NAME>\n"
            f"      </{'INDIVIDUAL' if p['kind'] == 'individual' else 'ENTITY'}_ALIAS>\n"
            for a, b in p["aliases"]  # type: ignore[attr-defined]
        )
        if p["kind"] == "individual":
            first, *rest = str(p["first"]).split()
            second = " ".join(rest)
            year, month, day = _iso_dob(str(p["dob"]))
            dob = (
                f"        <TYPE_OF_DATE>EXACT</TYPE_OF_DATE>\n        <DATE>{year}-{int(month):02d}-{int(day):02d}</DATE>\n"
                if day
                else f"        <TYPE_OF_DATE>APPROXIMATELY</TYPE_OF_DATE>\n        <YEAR>{year}</YEAR>\n"
            )
            individuals.append(
                f"    <INDIVIDUAL>\n      <DATAID>{dataid}</DATAID>\n      <VERSIONNUM>1</VERSIONNUM>\n"
                f"      <FIRST_NAME>{x(first.upper())}</FIRST_NAME>\n"
                f"      <SECOND_NAME>{x((second + ' ' + str(p['last'])).strip().upper())}</SECOND_NAME>\n"
                "      <THIRD_NAME/>\n      <UN_LIST_TYPE>Fictional</UN_LIST_TYPE>\n"
                f"      <REFERENCE_NUMBER>QDi.{int(p['i']):03d}</REFERENCE_NUMBER>\n"  # type: ignore[call-overload]
                "      <LISTED_ON>2019-05-14</LISTED_ON>\n      <NAME_ORIGINAL_SCRIPT/>\n"
                "      <COMMENTS1>A fictional entry of the emulator's fixture.</COMMENTS1>\n"
                f"{aliases}      <INDIVIDUAL_DATE_OF_BIRTH>\n{dob}      </INDIVIDUAL_DATE_OF_BIRTH>\n"
                "    </INDIVIDUAL>\n"
            )
        else:
            entities.append(
                f"    <ENTITY>\n      <DATAID>{dataid}</DATAID>\n      <VERSIONNUM>1</VERSIONNUM>\n"
                f"      <FIRST_NAME>{x(str(p['last']).upper())}</FIRST_NAME>\n"
                "      <UN_LIST_TYPE>Fictional</UN_LIST_TYPE>\n"
                f"      <REFERENCE_NUMBER>QDe.{int(p['i']):03d}</REFERENCE_NUMBER>\n"  # type: ignore[call-overload]
                f"      <LISTED_ON>2020-02-03</LISTED_ON>\n{aliases}    </ENTITY>\n"
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<CONSOLIDATED_LIST xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:noNamespaceSchemaLocation="https://scsanctions.un.org/resources/xml/en/consolidated.xsd" '
        'dateGenerated="2026-11-19T00:00:04.221Z">\n'
        "  <INDIVIDUALS>\n" + "".join(individuals) + "  </INDIVIDUALS>\n"
        "  <ENTITIES>\n" + "".join(entities) + "  </ENTITIES>\n</CONSOLIDATED_LIST>\n"
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sdn.xml").write_text(ofac("sdn", 40_000, 180, "11/21/2026", with_crypto=True))
    (OUT / "consolidated.xml").write_text(ofac("consolidated", 90_000, 80, "11/18/2026", with_crypto=False))
    (OUT / "eu.xml").write_text(eu(150))
    (OUT / "un.xml").write_text(un(120))
    print("known:", address("XLM", "known-stellar"), address("TON", "known-ton"))


if __name__ == "__main__":
    main()
