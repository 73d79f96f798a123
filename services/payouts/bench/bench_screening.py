"""Fuzzy name screening, measured: false positives and false negatives per threshold, and throughput.

    uv run --frozen python services/payouts/bench/bench_screening.py            # the table (docs/capacity.md)
    uv run --frozen python services/payouts/bench/bench_screening.py --generate # rewrite the committed sample

The sample (`screening_sample.json`, committed, deterministic) is FICTIONAL: a list of 8,000 listed individuals
(names from name parts of several origins, most with aliases, most with a date of birth), 5,000 players who are
NOT on it (no player's name is a listed name, token for token) and 200 true variants of listed names
(transliteration, a missing middle name, swapped order, a typo, accents and punctuation, or two of these).

A false positive: a player with any hit at the threshold. A false negative: a variant whose listed entry is not
among its hits. Throughput: `screen_person`-equivalent calls (the name and its date of birth against the whole
list) per second on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import date
from pathlib import Path

from prizeflow_compliance.domain.sanctions import EntryKind, ListEntry, ListIndex, name_tokens

SAMPLE = Path(__file__).resolve().parent / "screening_sample.json"
THRESHOLDS = tuple(range(800, 1000, 20))
DEFAULT_THRESHOLD = 920  # PAYOUTS_SANCTIONS_NAME_THRESHOLD's default

# Name parts by origin; surnames are built from roots and the origin's endings, so most are nobody's real name.
FIRST = {
    "slavic": "Aleksandr Dmitri Sergei Vasily Anatoly Grigori Yevgeny Oleg Pavel Yuri Boris Igor Nikolai Arkady "
    "Svetlana Ludmila Yelena Tatiana Irina Olga Natalia Galina Vera Zoya",
    "arabic": "Mohammed Ahmed Abdullah Khalid Omar Yusuf Ibrahim Hassan Hussein Tarek Nabil Faisal Hamza Marwan "
    "Qasim Idris Fatima Aisha Mariam Layla Samira Amira Noor Huda",
    "persian": "Farhad Kaveh Dariush Jamshid Reza Mehdi Behrouz Siavash Arash Kourosh Shirin Parisa Nasrin Leila",
    "turkic": "Rustam Timur Bakhtiyar Nursultan Aibek Erlan Serik Murat Zarina Aigerim Gulnara Nargiz",
    "hispanic": "Joaquin Esteban Ramiro Anselmo Leandro Carlos Miguel Alejandro Diego Javier Lucia Carmen Rosa "
    "Marisol Paloma Ximena",
    "chinese": "Wei Jian Haoran Zhiwei Xiaoming Li Na Jing Hui Yan Lei Bo Ming",
    "korean": "Min-jun Seo-yeon Kwang-su Ji-ho Hyun-woo Eun-ji Sung-min Young-ho",
    "african": "Kwabena Chidi Oluwaseun Tendai Baraka Kofi Amara Ngozi Thandiwe Jabari Sekou Abena",
    "anglo": "James John Robert Michael William David Richard Thomas Mary Patricia Jennifer Linda Elizabeth Susan",
    "balkan": "Zoran Dragan Milos Bogdan Radovan Goran Nenad Vesna Jelena Snezana",
}
ROOTS = {
    "slavic": "Volk Petr Ivan Sokol Orl Tarkhan Semen Brusil Yermak Gorshen Kuzn Zhuk Belyak Morozh Dudar Lysen",
    "arabic": "Qader Zubayd Haddad Mansour Rashid Khatib Nasser Hamdan Sharif Jabbar Saadi Tamimi Obeid Harb",
    "persian": "Tabriz Farahmand Jahangir Kazem Rostam Behzad Sadegh Mirza Golshir Amirkhan",
    "turkic": "Karabek Nazarbay Tokay Seit Ermek Aliyar Bekmur Sarsen Dauren Kaliy",
    "hispanic": "Obreg Castell Villanuev Montalv Urquid Fernand Gonzal Rodrig Martin Sanch Ramir Dominguez",
    "chinese": "Zhao Qian Sun Zhou Wu Zheng Wang Feng Chen Chu Wei Jiang Shen Han Yang",
    "korean": "Kim Lee Park Choi Jung Kang Cho Yoon Jang Lim",
    "african": "Adeyem Okonkw Mbath Nkos Osei Mensah Owus Diall Traor Keit Kamar Okaf",
    "anglo": "Ash Brad Cart Dal Elling Fair Hart Kings Lang Mor Pem Rad Stan Thorn Wells",
    "balkan": "Radul Petrak Drag Jovan Milos Stojan Vukov Nikol Pavlov Markov",
}
ENDINGS = {
    "slavic": ("ov", "ova", "enko", "sky", "in", "ich", "uk", "yev"),
    "arabic": ("", "i", "an", "ah"),
    "persian": ("i", "ian", "zadeh", "pour", "nia"),
    "turkic": ("ov", "uly", "oglu", "bekov", "ayev"),
    "hispanic": ("ez", "o", "a", "ino", "es"),
    "chinese": ("",),
    "korean": ("",),
    "african": ("a", "e", "o", "u", "i"),
    "anglo": ("ton", "ley", "son", "field", "wood", "er"),
    "balkan": ("ic", "ovic", "evic", "ski"),
}
MIDDLE = {"slavic": ("ovich", "ovna"), "arabic": ("bin", "ibn", "abu"), "hispanic": ("Maria", "Jose", "Luis")}
ORIGINS = tuple(FIRST)
TRANSLIT = (
    ("mohammed", "muhammad"),
    ("ahmed", "ahmad"),
    ("yusuf", "youssef"),
    ("hussein", "husayn"),
    ("ov", "ow"),
    ("sky", "ski"),
    ("yev", "iev"),
    ("kh", "h"),
    ("ei", "ey"),
    ("sh", "ch"),
    ("y", "i"),
    ("ou", "u"),
    ("j", "dzh"),
    ("zh", "j"),
    ("ic", "ich"),
)
ACCENTS = str.maketrans({"a": "á", "e": "é", "o": "ö", "u": "ü", "c": "č", "s": "š", "n": "ñ"})


SYLLABLES = {
    "slavic": "ka ro mi lo vi de sha bo gre ty nev ras kov zol mar tyn",
    "arabic": "ab du ra ha mi sa fa ka ja li ta bi qa zu",
    "persian": "da ri ba ne ja ha sa fa go la mo ka",
    "turkic": "ba ky ta se nu ar mu ka zh ol er",
    "hispanic": "ca re do mi ta lo va ser gar ri bel",
    "chinese": "an bao cheng de fang guo hai jin kang long",
    "korean": "su jin ho min seok hyun",
    "african": "ba ko ma nde ola fe ke ju si ta",
    "anglo": "ber win crof hal mer ston ridge ford ham",
    "balkan": "bra ko vu se ra di mi lo je",
}


def _surname(rng: random.Random, origin: str) -> str:
    root = rng.choice(ROOTS[origin].split())
    if origin not in ("chinese", "korean") and rng.random() < 0.85:
        root += "".join(rng.choice(SYLLABLES[origin].split()) for _ in range(rng.choice((1, 1, 2))))
    name = root + rng.choice(ENDINGS[origin])
    if origin == "arabic" and rng.random() < 0.5:
        name = "Al-" + name
    return name


def _person(rng: random.Random) -> tuple[str, str | None]:
    origin = rng.choice(ORIGINS)
    first = rng.choice(FIRST[origin].split())
    if rng.random() < 0.2:  # a mixed-origin name
        origin = rng.choice(ORIGINS)
    last = _surname(rng, origin)
    middle = None
    if origin in MIDDLE and rng.random() < 0.4:
        part = rng.choice(MIDDLE[origin])
        middle = (rng.choice(FIRST[origin].split()) + part) if part.startswith("ov") else part
        if part in ("bin", "ibn", "abu"):
            middle = f"{part} {rng.choice(FIRST[origin].split())}"
    return " ".join(p for p in (first, middle, last) if p), middle


def _dob(rng: random.Random) -> str:
    return date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)).isoformat()


def _typo(rng: random.Random, name: str) -> str:
    tokens = name.split()
    candidates = [i for i, t in enumerate(tokens) if len(t) >= 5]
    if not candidates:
        return name
    i = rng.choice(candidates)
    t = tokens[i]
    k = rng.randrange(1, len(t) - 1)
    op = rng.choice(("swap", "drop", "replace", "double"))
    if op == "swap":
        t = t[:k] + t[k + 1] + t[k] + t[k + 2 :]
    elif op == "drop":
        t = t[:k] + t[k + 1 :]
    elif op == "replace":
        t = t[:k] + rng.choice("aeioulnrst") + t[k + 1 :]
    else:
        t = t[:k] + t[k] + t[k:]
    tokens[i] = t
    return " ".join(tokens)


def _translit(rng: random.Random, name: str) -> str:
    low = name.casefold()
    rules = [r for r in TRANSLIT if r[0] in low]
    if not rules:
        return _typo(rng, name)
    for old, new in rng.sample(rules, min(2, len(rules))):
        low = low.replace(old, new)
    return low.title()


def _variant(rng: random.Random, name: str, middle: str | None) -> tuple[str, str]:
    kinds = ["translit", "swap", "typo", "accents"] + (["no_middle"] if middle else [])
    kind = rng.choice([*kinds, "combo"])
    steps = [rng.choice(kinds), rng.choice(["swap", "typo"])] if kind == "combo" else [kind]
    for step in steps:
        if step == "translit":
            name = _translit(rng, name)
        elif step == "swap":
            tokens = name.split()
            name = " ".join([tokens[-1], *tokens[:-1]])
        elif step == "typo":
            name = _typo(rng, name)
        elif step == "accents":
            name = name.replace("-", " ").translate(ACCENTS).upper()
        elif step == "no_middle" and middle:
            name = " ".join(name.replace(middle, " ").split())
    return name, "+".join(steps)


def generate(seed: int = 35) -> dict[str, object]:
    rng = random.Random(seed)
    listed: list[dict[str, object]] = []
    middles: dict[str, str | None] = {}
    for i in range(8000):
        name, middle = _person(rng)
        names = [name]
        for _ in range(rng.choice((0, 1, 1, 2))):
            names.append(_person(rng)[0].rsplit(" ", 1)[0] + " " + name.rsplit(" ", 1)[1])  # noqa: PERF401 - rng order
        uid = str(100_000 + i)
        births = [_dob(rng)[: rng.choice((4, 10, 10))]] if rng.random() < 0.8 else []
        listed.append({"uid": uid, "names": names, "birth_dates": births})
        middles[uid] = middle
    known = {tuple(sorted(name_tokens(n))) for e in listed for n in e["names"]}  # type: ignore[attr-defined]
    players: list[dict[str, str]] = []
    while len(players) < 5000:
        name, _ = _person(rng)
        if tuple(sorted(name_tokens(name))) not in known:
            players.append({"name": name, "birth_date": _dob(rng)})
    variants: list[dict[str, str | None]] = []
    for entry in rng.sample(listed, 200):
        uid = str(entry["uid"])
        primary = str(entry["names"][0])  # type: ignore[index]
        name, how = _variant(rng, primary, middles[uid])
        dates: list[str] = entry["birth_dates"]  # type: ignore[assignment]
        born = dates[0] if dates and len(dates[0]) == 10 else None
        variants.append({"name": name, "birth_date": born, "uid": uid, "listed": primary, "variant": how})
    return {"seed": seed, "listed": listed, "players": players, "variants": variants}


def load(path: Path = SAMPLE) -> tuple[ListIndex, list[dict[str, str]], list[dict[str, str | None]]]:
    sample = json.loads(path.read_text())
    index = ListIndex.build(
        ListEntry(uid=e["uid"], kind=EntryKind.INDIVIDUAL, names=tuple(e["names"]), birth_dates=tuple(e["birth_dates"]))
        for e in sample["listed"]
    )
    return index, sample["players"], sample["variants"]


def _born(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def measure(
    index: ListIndex, players: list[dict[str, str]], variants: list[dict[str, str | None]], *, floor: int = 800
) -> dict[int, tuple[float, float]]:
    """Threshold → (false-positive rate over the players, false-negative rate over the variants)."""
    player_best = [
        max((h.score for h in index.match_name([p["name"]], threshold=floor, born=_born(p["birth_date"]))), default=0)
        for p in players
    ]
    variant_score = []
    for v in variants:
        hits = index.match_name([str(v["name"])], threshold=floor, born=_born(v["birth_date"]))
        variant_score.append(max((h.score for h in hits if h.uid == v["uid"]), default=0))
    return {
        t: (
            sum(s >= t for s in player_best) / len(players),
            sum(s < t for s in variant_score) / len(variants),
        )
        for t in THRESHOLDS
    }


def throughput(index: ListIndex, players: list[dict[str, str]], threshold: int = DEFAULT_THRESHOLD) -> float:
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for p in players[:1000]:
            index.match_name([p["name"]], threshold=threshold, born=_born(p["birth_date"]))
        runs.append(1000 / (time.perf_counter() - started))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generate", action="store_true", help="rewrite the committed sample")
    args = parser.parse_args()
    if args.generate:
        SAMPLE.write_text(json.dumps(generate(), ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"wrote {SAMPLE}")
        return
    started = time.perf_counter()
    index, players, variants = load()
    built = time.perf_counter() - started
    names = sum(len(e.names) for e in index.entries)
    print(f"list: {len(index)} individuals ({names} names), index built in {built:.2f} s")
    print(f"sample: {len(players)} players not listed, {len(variants)} variants of listed names")
    print("| threshold | false positives (players) | false negatives (variants) |")
    print("|---|---|---|")
    for t, (fp, fn) in measure(index, players, variants).items():
        mark = " (default)" if t == DEFAULT_THRESHOLD else ""
        print(f"| {t}{mark} | {fp:.2%} ({round(fp * len(players))}) | {fn:.1%} ({round(fn * len(variants))}) |")
    print(f"throughput at {DEFAULT_THRESHOLD}: {throughput(index, players):,.0f} names screened/s on one core")


if __name__ == "__main__":
    main()
