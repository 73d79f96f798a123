"""The results digest is the contract's definition, byte for byte, whichever way it is computed."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.events.game import Placement
from prizeflow_settlement.domain.results import canonical, results_digest

IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9:_.\-]{0,20}\Z")


def reference(placements: list[Placement]) -> str:
    doc = [{"player_id": p.player_id, "rank": p.rank, "score": p.score} for p in canonical(placements)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@given(st.lists(st.tuples(IDS, st.integers(1, 100), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=12))
def test_digest_of_validated_placements_is_the_canonical_json_sha256(rows: list[tuple[str, int, int]]) -> None:
    placements = [Placement(player_id=p, rank=r, score=s) for p, r, s in rows]
    assert results_digest(placements) == reference(placements)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(1, 5), st.integers()), min_size=1, max_size=6))
def test_digest_of_any_player_id_falls_back_to_json_and_still_matches(rows: list[tuple[str, int, int]]) -> None:
    # Unvalidated (model_construct): quotes, backslashes, non-ASCII must be escaped as json.dumps does.
    placements = [Placement.model_construct(player_id=p, rank=r, score=s) for p, r, s in rows]
    assert results_digest(placements) == reference(placements)


def test_digest_ignores_report_order() -> None:
    a = [Placement(player_id="p1", rank=1, score=9), Placement(player_id="p0", rank=1, score=9)]
    assert results_digest(a) == results_digest(a[::-1])
