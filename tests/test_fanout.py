"""Fan-out listings, make.orgs() and make.teams() against the sandbox's three zones.

alice belongs to Acme Analytics (1, zone 0: teams 1 and 2), Globex Research (2, zone 1:
team 3) and Stark Labs (4, zone 2: teams 5 and 6, and she may not read team 6)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from make_notebook_auth import MakeAPIError, ratelimit
from make_notebook_auth.fanout import SkippedWarning
from make_notebook_auth.sandbox import data

SCENARIOS = {1: 2500, 2: 180, 3: 640, 5: 12}


def test_orgs_frame(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    orgs = zoned_login().orgs()
    assert list(orgs.columns) == ["id", "name", "zone", "apiLimit"]
    assert orgs["id"].tolist() == [1, 2, 4]  # Make lists them by name
    assert orgs["name"].tolist() == ["Acme Analytics", "Globex Research", "Stark Labs"]
    assert orgs["zone"].tolist() == [sb.zones[0], sb.zones[1], sb.zones[2]]
    # the license comes only for organizations of the zone that answered (the home zone)
    assert orgs["apiLimit"].tolist()[0] == 120
    assert orgs["apiLimit"].isna().tolist() == [False, True, True]


def test_teams_frame_lists_every_team_in_every_zone(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    teams = zoned_login().teams()
    assert list(teams.columns) == ["id", "name", "organizationId", "zone"]
    assert teams["id"].tolist() == [1, 2, 3, 5, 6]
    assert teams["organizationId"].tolist() == [1, 1, 2, 4, 4]
    assert teams["zone"].tolist() == [sb.zones[0]] * 2 + [sb.zones[1]] + [sb.zones[2]] * 2


def test_frame_per_team(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    make = zoned_login()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = make.frame("scenarios", per="team", progress=False, page_size=1000)
    skipped = [w for w in caught if issubclass(w.category, SkippedWarning)]
    assert len(skipped) == 1  # one warning for all the skipped teams
    assert skipped[0].filename == __file__  # pointing at the caller
    assert "team 6 (Board Room)" in str(skipped[0].message)
    assert "SC403" in str(skipped[0].message)
    assert list(df.columns[:3]) == ["organizationId", "teamId", "zone"]
    assert df.groupby("teamId").size().to_dict() == SCENARIOS
    assert set(zip(df["teamId"], df["organizationId"], df["zone"], strict=True)) == {
        (1, 1, sb.zones[0]), (2, 1, sb.zones[0]), (3, 2, sb.zones[1]), (5, 4, sb.zones[2])}
    # organization, team, then the API's order (scenario ids ascending within a team)
    keys = list(zip(df["organizationId"], df["teamId"], df["id"], strict=True))
    assert keys == sorted(keys, key=lambda k: ([1, 2, 4].index(k[0]), k[1], k[2]))


@pytest.mark.filterwarnings("ignore::make_notebook_auth.fanout.SkippedWarning")
def test_fan_out_order_does_not_depend_on_the_threads(zoned_login):
    make = zoned_login()
    one = make.frame("connections", per="team", progress=False, workers=1)
    many = make.frame("connections", per="team", progress=False, workers=8)
    pd.testing.assert_frame_equal(one, many)
    assert one["teamId"].tolist() == sorted(one["teamId"].tolist())


def test_paginate_per_team_yields_the_frames_rows(zoned_login):
    make = zoned_login()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedWarning)
        items = list(make.paginate("hooks", per="team"))
        df = make.frame("hooks", per="team", progress=False)
    assert len(items) == len(df) == sum(len(data.hooks_for_team(t)) for t in (1, 2, 3, 5))
    assert [(i["organizationId"], i["teamId"], i["id"]) for i in items] == \
        list(zip(df["organizationId"], df["teamId"], df["id"], strict=True))
    assert all(i["zone"] for i in items)


def test_frame_per_organization(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    df = zoned_login().frame("scenarios", per="organization", max_items=5, progress=False)
    assert "teamId" in df.columns  # the scenarios' own column
    assert df["organizationId"].tolist() == [1] * 5 + [2] * 5 + [4] * 5
    assert df.groupby("organizationId")["zone"].first().to_dict() == {
        1: sb.zones[0], 2: sb.zones[1], 4: sb.zones[2]}


def test_an_organization_id_keeps_a_fan_out_to_its_teams(zoned_login):
    make = zoned_login()
    with pytest.warns(SkippedWarning, match="team 6"):
        df = make.frame("data-stores", {"organizationId": 4}, per="team", progress=False)
    assert set(df["teamId"]) == {5}
    with pytest.raises(ValueError, match="teamId"):
        make.frame("scenarios", {"teamId": 1}, per="team")
    with pytest.raises(ValueError, match="per must be"):
        make.frame("scenarios", per="zone")


def test_other_errors_raise(zoned_login):
    make = zoned_login()
    with pytest.raises(MakeAPIError) as info:
        make.frame("no-such-listing", per="team", progress=False)
    assert info.value.status == 404


@pytest.mark.filterwarnings("ignore::make_notebook_auth.fanout.SkippedWarning")
def test_fan_out_learns_each_organizations_limit(zoned_login):
    make = zoned_login()
    make.frame("data-stores", per="team", progress=False)
    # rate_share 0.5 of Pro 120, Teams 240, Core 60
    assert {o: ratelimit.known(o).limit for o in (1, 2, 4)} == {1: 60, 2: 120, 4: 30}


def test_fan_out_progress_bar(zoned_login, monkeypatch):
    import tqdm.auto

    seen = []

    class Bar:
        def __init__(self, total=None, desc=None, **kw):
            seen.append(("open", total, desc))
            seen.append(("leave", kw.get("leave", True)))  # tqdm's default is leave=True
            self.n = 0

        def set_postfix_str(self, text, refresh=True):
            pass

        def refresh(self):
            seen.append(("at", self.n))

        def close(self):
            seen.append(("close",))

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedWarning)
        zoned_login().frame("hooks", per="team", progress=True)
    assert seen[0] == ("open", 5, "hooks per team")
    assert ("leave", True) in seen  # the final count stays visible in a notebook and a terminal
    assert ("at", 5) in seen and seen[-1] == ("close",)


def test_paced_fan_out_sees_no_429(zoned_sandbox, zoned_login):
    sb = zoned_sandbox
    sb.set_org_limits(True, overrides={4: 3})
    make = zoned_login()
    make.rate_share = 1.0
    make.rate_limit(4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedWarning)
        for _ in range(3):
            make.frame("hooks", {"organizationId": 4}, per="team", progress=False)
    assert sb.faults.org_429s() == 0
    assert sb.faults.org_requests(4) >= 7
