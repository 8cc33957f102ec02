"""The session list's filters, on the shipped sessions (by hand from their files):
research_fx_momentum_v13 (alice, paper_research, strat.momentum_fx@1.3.0, tags fx momentum demo),
research_crypto_trend (carol, paper_research, strat.crypto_trend@0.1.0, tags crypto trend demo),
gatecheck_fx_momentum_v12 (bob, paper_gatecheck, strat.momentum_fx@1.2.0, tags fx momentum
promotion_candidate). Bad filter values are a 400 naming the field, never an empty 200."""

from __future__ import annotations

import pytest

ALL = {"research_fx_momentum_v13", "research_crypto_trend", "gatecheck_fx_momentum_v12"}


def ids(client, query: str) -> set[str]:
    response = client.get(f"/api/v1/sessions/?{query}")
    assert response.status_code == 200, response.json()
    return {s["session_id"] for s in response.json()}


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "expected"), [
    ("", ALL),
    ("lane=paper_research", {"research_fx_momentum_v13", "research_crypto_trend"}),
    ("lane=paper_gatecheck", {"gatecheck_fx_momentum_v12"}),
    ("owner=carol", {"research_crypto_trend"}),
    ("tag=fx", {"research_fx_momentum_v13", "gatecheck_fx_momentum_v12"}),
    ("tag=promotion_candidate", {"gatecheck_fx_momentum_v12"}),
    ("tag=f", set()),  # a whole tag, not a part of one
    ("strategy=strat.momentum_fx", {"research_fx_momentum_v13", "gatecheck_fx_momentum_v12"}),
    ("strategy=strat.momentum_fx@1.2.0", {"gatecheck_fx_momentum_v12"}),
    ("q=CRYPTO", {"research_crypto_trend"}),
    ("q=alice", {"research_fx_momentum_v13"}),
    ("status=scheduled&lane=paper_research&tag=demo", {"research_fx_momentum_v13", "research_crypto_trend"}),
    ("tag=demo&owner=carol", {"research_crypto_trend"}),
    ("status=running", set()),
])
def test_filters_select_the_sessions(loaded, client, query, expected):
    assert ids(client, query) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "field", "says"), [
    ("lane=bogus", "lane", "no lane 'bogus' (lanes: paper_gatecheck, paper_research)"),
    ("status=sleeping", "status", '"sleeping" is not a valid choice.'),
    ("strategy=strat.nope", "strategy", "no strategy 'strat.nope' in the registry"),
    ("strategy=strat.momentum_fx@9.9.9", "strategy", "no strategy 'strat.momentum_fx@9.9.9' in the registry"),
    ("tag=not%20a%20tag", "tag", None),
    ("q=" + "x" * 201, "q", "Ensure this field has no more than 200 characters."),
])
def test_bad_filters_are_400_naming_the_field(loaded, client, query, field, says):
    response = client.get(f"/api/v1/sessions/?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == [field]
    if says is not None:
        assert error["fields"][field] == [says]
