"""Listings, JSON and Make's errors against the Make-like API (tokens from oidc-provider)."""

from __future__ import annotations

import re
import sys

import pandas as pd
import pytest

from make_notebook_auth import ListingError, MakeAPIError, MakeError, listing
from make_notebook_auth.listing import MAX_PAGE_SIZE

TEAM1 = 2500  # scenarios of team 1 in the sandbox data (alice's team)
TEAM2 = 180


def limits(make_api, path="scenarios"):
    return [(int(q["pg[offset]"][0]), int(q["pg[limit]"][0])) for q in make_api.queries(path)]


# --- paginate ----------------------------------------------------------------------------------


def test_paginate_walks_every_page_once(api_login, make_api):
    make = api_login()
    items = list(make.paginate("scenarios", {"teamId": 1}))
    assert len(items) == TEAM1
    assert len({s["id"] for s in items}) == TEAM1
    assert [s["id"] for s in items] == sorted(s["id"] for s in items)
    # an exact multiple of the page size: 25 full pages and one empty page, no more
    assert make_api.calls("scenarios") == TEAM1 // 100 + 1
    assert limits(make_api) == [(offset, 100) for offset in range(0, TEAM1 + 1, 100)]


def test_short_last_page_stops_without_an_extra_request(api_login, make_api):
    make = api_login()
    assert len(list(make.paginate("scenarios", {"teamId": 2}))) == TEAM2
    assert limits(make_api) == [(0, 100), (100, 100)]


@pytest.mark.parametrize("page_size", [60, 90, 180])
def test_exact_multiple_costs_one_empty_page_at_most(api_login, make_api, page_size):
    make = api_login()
    assert len(list(make.paginate("scenarios", {"teamId": 2}, page_size=page_size))) == TEAM2
    assert make_api.calls("scenarios") == TEAM2 // page_size + 1


def test_max_items_costs_no_more_requests_than_needed(api_login, make_api):
    make = api_login()
    items = list(make.paginate("scenarios", {"teamId": 1}, max_items=150))
    assert len(items) == 150
    assert limits(make_api) == [(0, 100), (100, 50)]
    make_api.reset()
    assert len(list(make.paginate("scenarios", {"teamId": 1}, max_items=100))) == 100
    assert make_api.calls("scenarios") == 1
    make_api.reset()
    assert list(make.paginate("scenarios", {"teamId": 1}, max_items=0)) == []
    assert make_api.calls() == 0
    make_api.reset()
    assert len(list(make.paginate("scenarios", {"teamId": 2}, max_items=10_000))) == TEAM2
    assert make_api.calls("scenarios") == 2


def test_paginate_is_lazy(api_login, make_api):
    make = api_login()
    first = next(iter(make.paginate("scenarios", {"teamId": 1})))
    assert first["teamId"] == 1
    assert make_api.calls("scenarios") == 1


def test_page_size_is_capped_at_makes_maximum(api_login, make_api):
    make = api_login()
    assert len(list(make.paginate("scenarios", {"teamId": 1}, page_size=50_000))) == TEAM1
    assert limits(make_api) == [(0, MAX_PAGE_SIZE)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True])
def test_bad_page_size_or_max_items(api_login, bad):
    make = api_login()
    with pytest.raises(ValueError, match="page_size"):
        list(make.paginate("scenarios", {"teamId": 1}, page_size=bad))
    if bad != 0:
        with pytest.raises(ValueError, match="max_items"):
            list(make.paginate("scenarios", {"teamId": 1}, max_items=bad))


def test_params_offset_limit_and_columns(api_login, make_api):
    make = api_login()
    items = list(make.paginate("scenarios", [("teamId", 2), ("pg[offset]", 170),
                                             ("cols[]", "id"), ("cols[]", "name")]))
    assert len(items) == 10 and set(items[0]) == {"id", "name"}
    assert limits(make_api) == [(170, 100)]
    make_api.reset()
    items = list(make.paginate("scenarios", {"teamId": 2, "pg[limit]": 50,
                                             "pg[sortDir]": "desc"}))
    assert len(items) == TEAM2 and items[0]["id"] > items[-1]["id"]
    assert make_api.calls("scenarios") == 4
    assert make_api.queries("scenarios")[0]["pg[sortDir]"] == ["desc"]


def test_list_key_is_found_or_named(api_login, make_api):
    make = api_login()
    orgs = list(make.paginate("organizations"))
    assert [o["id"] for o in orgs] == [1, 2, 4]  # alice: Acme, Globex, Stark (by name)
    assert list(make.paginate("organizations", key="organizations")) == orgs
    with pytest.raises(MakeError, match="'authUser'") as info:
        list(make.paginate("users/me"))
    assert "key=" in str(info.value)
    with pytest.raises(MakeError, match="keys seen: 'organizations', 'pg'"):
        list(make.paginate("organizations", key="teams"))


def test_several_lists_need_a_key(scripted_api, token_session):
    server = scripted_api(lambda req: (200, {}, {"a": [1], "b": [2], "pg": {}}))
    make = token_session(server.api_url)
    with pytest.raises(MakeError, match="several lists.*'a', 'b', 'pg'"):
        list(make.paginate("things"))
    assert list(make.paginate("things", key="b")) == [2]


def test_server_cap_below_page_size_does_not_stop_early(scripted_api, token_session):
    data = list(range(25))

    def reply(req):
        offset = int(req.query["pg[offset]"][0])
        limit = min(int(req.query["pg[limit]"][0]), 10)  # the server serves 10 at most
        return 200, {}, {"things": data[offset:offset + limit],
                         "pg": {"offset": offset, "limit": limit}}

    server = scripted_api(reply)
    make = token_session(server.api_url)
    assert list(make.paginate("things", page_size=100)) == data
    assert server.calls() == 3


def test_endpoint_ignoring_pagination_is_detected(scripted_api, token_session):
    server = scripted_api(lambda req: (200, {}, {"things": [{"id": i} for i in range(100)]}))
    make = token_session(server.api_url)
    with pytest.raises(MakeAPIError, match="does not seem to paginate") as info:
        list(make.paginate("things"))
    assert isinstance(info.value, ListingError)
    assert server.calls() == 2


def test_page_of_items_already_seen_in_another_order_stops(scripted_api, token_session):
    # The second page repeats the first page's items, reversed: the first item differs, the
    # page brings nothing new. (Comparing only the first item would loop forever.)
    def reply(req):
        offset = int(req.query["pg[offset]"][0])
        items = [{"id": i} for i in range(10)]
        return 200, {}, {"things": items if offset == 0 else items[::-1]}

    server = scripted_api(reply)
    make = token_session(server.api_url)
    with pytest.raises(MakeAPIError, match="no progress"):
        list(make.paginate("things", page_size=10))
    assert server.calls() == 2


def test_repeated_items_without_ids_are_detected_by_their_content(scripted_api,
                                                                  token_session):
    # No "id" to go by (and an id that is a mapping): the items' content decides.
    def reply(req):
        offset = int(req.query["pg[offset]"][0])
        items = [{"name": f"n{i}", "id": {"k": i}} if i % 2 else {"name": f"n{i}"}
                 for i in range(6)]
        return 200, {}, {"things": items if offset == 0 else items[::-1]}

    server = scripted_api(reply)
    make = token_session(server.api_url)
    with pytest.raises(MakeAPIError, match="no progress"):
        list(make.paginate("things", page_size=6))
    assert server.calls() == 2


def test_page_overlapping_earlier_items_still_counts_as_progress(scripted_api, token_session):
    # Items shift between requests (one was added): one repeat, but new items too.
    def reply(req):
        offset = int(req.query["pg[offset]"][0])
        start = offset - 1 if offset else 0
        return 200, {}, {"things": [{"id": i} for i in range(start, min(start + 5, 12))]}

    server = scripted_api(reply)
    make = token_session(server.api_url)
    ids = [t["id"] for t in make.paginate("things", page_size=5)]
    assert ids == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11]


def test_listing_pages_are_bounded(scripted_api, token_session, monkeypatch):
    # An endpoint that makes up new items forever stops at MAX_PAGES pages.
    monkeypatch.setattr(listing, "MAX_PAGES", 4)
    server = scripted_api(lambda req: (200, {}, {"things": [
        {"id": int(req.query["pg[offset]"][0]) + i} for i in range(2)]}))
    make = token_session(server.api_url)
    with pytest.raises(MakeAPIError, match="after 4 pages"):
        list(make.paginate("things", page_size=2))
    assert server.calls() == 4


def test_listing_shape_errors_are_named(scripted_api, token_session):
    server = scripted_api(lambda req: (200, {}, {"a": [1], "b": [2]}))
    make = token_session(server.api_url)
    with pytest.raises(ListingError, match="several lists"):
        list(make.paginate("things"))


# --- frame -------------------------------------------------------------------------------------


def test_frame_flattens_nested_fields_in_a_stable_order(api_login):
    make = api_login()
    df = make.frame("scenarios", {"teamId": 2}, progress=False)
    assert isinstance(df, pd.DataFrame) and len(df) == TEAM2
    cols = list(df.columns)
    assert cols[:3] == ["id", "name", "teamId"]
    assert {"scheduling.type", "createdByUser.name", "updatedByUser.email"} <= set(cols)
    assert "createdByUser" not in cols
    # nested fields stay where their parent was
    assert cols.index("lastEdit") < cols.index("scheduling.type") < cols.index("iswaiting")
    again = make.frame("scenarios", {"teamId": 2}, page_size=7, progress=False)
    assert list(again.columns) == cols
    pd.testing.assert_frame_equal(df, again)


def test_frame_of_flat_items_is_a_plain_dataframe(api_login):
    make = api_login()
    df = make.frame("scenarios", {"teamId": 2, "cols[]": ["id", "name", "isActive"]},
                    progress=False)
    items = list(make.paginate("scenarios", {"teamId": 2, "cols[]": ["id", "name",
                                                                     "isActive"]}))
    pd.testing.assert_frame_equal(df, pd.DataFrame(items))


def test_empty_listing_gives_an_empty_frame(api_login, make_api, scripted_api, token_session):
    make = api_login()
    df = make.frame("scenarios", {"teamId": 2, "pg[offset]": 10_000})
    assert df.empty and len(df) == 0
    assert make_api.calls("scenarios") == 1
    assert list(make.paginate("scenarios", {"teamId": 2, "pg[offset]": TEAM2})) == []
    server = scripted_api(lambda req: (200, {}, {"hooks": [], "pg": {"offset": 0}}))
    assert token_session(server.api_url).frame("hooks").empty


def test_frame_max_items(api_login, make_api):
    make = api_login()
    df = make.frame("scenarios", {"teamId": 1}, max_items=150, progress=False)
    assert len(df) == 150
    assert make_api.calls("scenarios") == 2


class FakeBar:
    made: list[FakeBar] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.n = kwargs.get("initial", 0)
        self.closed = False
        FakeBar.made.append(self)

    def update(self, n):
        self.n += n

    def refresh(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch):
    import tqdm.auto

    FakeBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    return FakeBar.made


def test_progress_bar_rules(api_login, fake_tqdm, monkeypatch):
    from make_notebook_auth import frames

    make = api_login()
    # a plain script whose stderr is not a terminal (pytest captures it): no bar
    monkeypatch.setattr(frames, "in_notebook", lambda: False)
    monkeypatch.setattr(frames, "_stderr_is_terminal", lambda: False)
    make.frame("scenarios", {"teamId": 2})
    assert fake_tqdm == []
    # forced on: a bar, counting every item, closed at the end
    make.frame("scenarios", {"teamId": 2}, progress=True)
    assert len(fake_tqdm) == 1 and fake_tqdm[0].n == TEAM2 and fake_tqdm[0].closed
    # in a notebook: a bar only when the listing spans more than one page
    fake_tqdm.clear()
    monkeypatch.setattr(frames, "in_notebook", lambda: True)
    make.frame("scenarios", {"teamId": 2}, page_size=1000)
    assert fake_tqdm == []
    make.frame("scenarios", {"teamId": 2}, max_items=150)
    assert len(fake_tqdm) == 1 and fake_tqdm[0].n == 150
    assert fake_tqdm[0].kwargs["total"] == 150
    # progress=False turns it off everywhere
    fake_tqdm.clear()
    make.frame("scenarios", {"teamId": 2}, progress=False)
    assert fake_tqdm == []
    # a terminal counts too
    monkeypatch.setattr(frames, "in_notebook", lambda: False)
    monkeypatch.setattr(frames, "_stderr_is_terminal", lambda: True)
    make.frame("scenarios", {"teamId": 2})
    assert len(fake_tqdm) == 1 and fake_tqdm[0].closed


def test_progress_counts_advance_per_page_and_the_final_count_stays(api_login, monkeypatch):
    """A real tqdm bar (the terminal one tqdm.auto picks outside a notebook), writing to a
    buffer: every page redraws the count, and the closed bar keeps its last line."""
    import io

    import tqdm.auto
    import tqdm.std

    screen = io.StringIO()

    class ScreenBar(tqdm.std.tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(file=screen, mininterval=3600)  # tqdm alone would draw almost nothing
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", ScreenBar)
    make = api_login()
    frame = make.frame("scenarios", {"teamId": 2}, page_size=50, progress=True)
    assert len(frame) == TEAM2
    drawn = [int(n) for n in re.findall(r"scenarios: (\d+) items", screen.getvalue())]
    assert sorted(set(drawn)) == [50, 100, 150, 180]  # one count per page, never "0 items"
    assert drawn == sorted(drawn)
    last_state = screen.getvalue().rstrip("\n").split("\r")[-1]
    assert "180 items" in last_state  # not wiped when the bar closed


def test_progress_in_a_notebook_counts_per_page_and_stays(api_login, monkeypatch):
    """tqdm.auto's notebook bar (an ipywidgets progress bar): its value follows the pages, and
    closing it leaves it on show (a bar that closes itself with leave=False disappears)."""
    import tqdm.auto
    import tqdm.notebook

    shown: list[tuple] = []

    class NotebookBar(tqdm.notebook.tqdm_notebook):
        def display(self, *args, **kwargs):
            super().display(*args, **kwargs)
            right = self.container.children[2]
            shown.append((self.n, right.value, kwargs.get("close", False),
                          kwargs.get("bar_style")))

    monkeypatch.setattr(tqdm.auto, "tqdm", NotebookBar)
    make = api_login()
    frame = make.frame("scenarios", {"teamId": 2}, page_size=50, progress=True)
    assert len(frame) == TEAM2
    # tqdm may draw by itself too (when its mininterval passed): count distinct states.
    values = [value for value, *_ in shown]
    assert sorted(set(values)) == [50, 100, 150, 180] and values == sorted(values)
    texts = [text.replace("\u2007", " ") for _, text, *_ in shown]
    counts = [int(t.split("/")[0]) for t in texts]
    assert sorted(set(counts)) == [50, 100, 150, 180] and counts == sorted(counts)
    last_value, _, closed, style = shown[-1]
    assert (last_value, closed, style) == (180, False, "success")  # stays, with its count
    assert not any(closed for *_, closed, _style in shown)


def test_in_notebook_detection(monkeypatch):
    from make_notebook_auth import frames

    class Shell:
        kernel = object()

    class IPythonModule:
        shell = None

        @classmethod
        def get_ipython(cls):
            return cls.shell

    monkeypatch.setitem(sys.modules, "IPython", IPythonModule)
    assert frames.in_notebook() is False
    IPythonModule.shell = Shell()
    assert frames.in_notebook() is True
    monkeypatch.delitem(sys.modules, "IPython")
    assert frames.in_notebook() is False


# --- errors ------------------------------------------------------------------------------------


def test_missing_scope_is_a_make_api_error(api_login, make_api):
    make = api_login(scopes="openid user:read")
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios", {"teamId": 1})
    err = info.value
    assert (err.status, err.code, err.message, err.detail) == (403, "SC403", "Permission denied",
                                                               "Access denied.")
    assert "scenarios:read" in str(err) and "MAKE_SCOPES" in str(err)
    assert err.suberrors and "scenarios:read" in err.suberrors[0]["message"]
    with pytest.raises(MakeAPIError, match="SC403"):
        list(make.paginate("scenarios", {"teamId": 1}))
    with pytest.raises(MakeAPIError, match="SC403"):
        make.frame("scenarios", {"teamId": 1})
    # plain get keeps requests' behaviour: the response, no exception
    resp = make.get("scenarios", params={"teamId": 1})
    assert resp.status_code == 403 and resp.json()["code"] == "SC403"


def test_bad_request_and_not_found(api_login):
    make = api_login()
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios")
    assert info.value.status == 400 and info.value.code == "SC400"
    assert "teamId" in str(info.value)
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios/999999")
    assert (info.value.status, info.value.code) == (404, "SC404")
    with pytest.raises(MakeAPIError) as info:
        make.json("scenarios", {"teamId": 4})  # carol's team, not alice's
    assert info.value.status == 403


def test_refused_token_is_a_401(make_api, token_session):
    make = token_session(make_api.api_url)  # a token the provider never issued
    with pytest.raises(MakeAPIError) as info:
        make.json("users/me")
    assert info.value.status == 401 and "Log in again" in str(info.value)
    assert "made-up-token" not in str(info.value)


def test_json_helper(api_login, scripted_api, token_session):
    make = api_login()
    assert make.json("users/me")["authUser"]["email"] == "alice@example.test"
    server = scripted_api(lambda req: (204, {}, b"") if req.path.endswith("empty")
                          else (200, {}, b"<html>not json</html>"))
    other = token_session(server.api_url)
    assert other.json("empty") is None
    with pytest.raises(MakeAPIError, match="not JSON"):
        other.json("html")


def test_non_json_error_body(scripted_api, token_session):
    server = scripted_api(lambda req: (418, {}, b"<html>teapot</html>"))
    with pytest.raises(MakeAPIError) as info:
        token_session(server.api_url).json("pot")
    assert info.value.status == 418 and info.value.code is None
    assert "<html>" not in str(info.value)
