"""pandas edge: turn userinfo claims and API listings into DataFrames.

pandas (and tqdm, for the progress bar) are imported only when a frame is built.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .listing import DEFAULT_PAGE_SIZE

if TYPE_CHECKING:
    import pandas as pd

    from .listing import Page, Params
    from .session import MakeSession

# JSON's value types, known not to be mappings: skips the slow ABC isinstance check.
_PLAIN = frozenset({str, int, float, bool, type(None), list})


def _is_mapping(value: Any) -> bool:
    kind = type(value)
    return kind is dict or (kind not in _PLAIN and isinstance(value, Mapping))


def _nested_value(row: Mapping[str, Any]) -> bool:
    return any(map(_is_mapping, row.values()))


def _nested_column(frame: pd.DataFrame) -> bool:
    """Whether an object column holds a mapping (other dtypes cannot): a C-speed type scan."""
    import numpy as np

    object_dtype = np.dtype("O")
    for i, dtype in enumerate(frame.dtypes):
        if dtype == object_dtype:
            types = set(map(type, frame.iloc[:, i].to_numpy()))
            if any(issubclass(t, Mapping) for t in types):
                return True
    return False


def _flatten(row: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        name = f"{prefix}{key}"
        if _is_mapping(value):
            if value:  # an empty mapping adds no column (as pd.json_normalize)
                _flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


def _flat_frame(rows: list[Any]) -> pd.DataFrame:
    """Nested mappings become ``a.b`` columns, in place: ``scheduling.type`` where
    ``scheduling`` was (``pd.json_normalize`` would move them to the end, and is slower)."""
    import pandas as pd

    return pd.DataFrame([_flatten(row, "", {}) for row in rows])


def records_frame(items: Iterable[Any], index: list[str] | None = None,
                  index_name: str | None = None) -> pd.DataFrame:
    """A DataFrame of records; nested mappings flattened to ``a.b`` columns.

    Columns come in first-seen order (the API's field order). Flat records cost what
    ``pd.DataFrame`` costs (plus a type scan of its object columns); flattening runs only
    when some value is a mapping. Items that are not mappings become a ``value`` column.
    """
    import pandas as pd

    rows = items if isinstance(items, list) else list(items)
    if rows and not all(type(r) is dict for r in rows):
        rows = [r if isinstance(r, Mapping) else {"value": r} for r in rows]
    if rows and _nested_value(rows[0]):
        frame = _flat_frame(rows)
    else:
        frame = pd.DataFrame(rows)
        if rows and _nested_column(frame):
            frame = _flat_frame(rows)
    if index is not None:
        frame.index = pd.Index(index, name=index_name)
    return frame


def userinfo_frame(claims_by_profile: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per profile (the index), one column per userinfo claim."""
    profiles = list(claims_by_profile)
    return records_frame([claims_by_profile[p] for p in profiles], index=profiles,
                         index_name="profile")


# --- listings ------------------------------------------------------------------------------


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython already imported, with a kernel)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    if get is None:
        return False
    try:
        shell = get()
    except Exception:  # noqa: BLE001 - a broken shell only means "no"
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _stderr_is_terminal() -> bool:
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def want_progress(progress: bool | None) -> bool:
    """``progress=None``: a bar in a notebook or when stderr is a terminal, never otherwise."""
    if progress is not None:
        return bool(progress)
    return in_notebook() or _stderr_is_terminal()


def listing_frame(pages: Iterable[Page], *, progress: bool | None = None,
                  total: int | None = None, desc: str | None = None) -> pd.DataFrame:
    """Collect a listing's pages into a DataFrame, with a ``tqdm.auto`` bar when wanted.

    With ``progress=None`` the bar appears only once a second page is needed (a one-page
    listing never shows one). The count is redrawn as each page arrives (pages are few and
    slow, so tqdm's rate limiting would otherwise hide them), and the bar stays with the final
    count when the listing is complete.
    """
    items: list[Any] = []
    bar = None
    show = want_progress(progress)
    try:
        for page in pages:
            items.extend(page.items)
            if bar is not None:
                bar.update(len(page.items))
                bar.refresh()
            elif show and (progress is True or not page.last):
                from tqdm.auto import tqdm

                # Drawn first with the items already here (never a misleading "0 items").
                bar = tqdm(total=total, desc=desc, unit=" items", leave=True,
                           initial=len(items))
    finally:
        if bar is not None:
            bar.close()
    return records_frame(items)


# --- the account at a glance, and fan-outs ---------------------------------------------------


def _eta_text(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}:{seconds % 60:02d}"


def fanout_frame(session: MakeSession, path: str, params: Params = None, *, per: str = "team",
                 key: str | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                 max_items: int | None = None, workers: int | None = None,
                 progress: bool | None = None) -> pd.DataFrame:
    """One DataFrame of a listing run for every team (or organization); see ``fanout.py``.

    The ``tqdm.auto`` bar counts teams; besides tqdm's own estimate it shows ``budget``, the
    least time the organizations' rate budgets need for the teams left.
    """
    from . import fanout

    the_plan = fanout.plan(session, per, params, workers=workers)
    bar = None
    on_progress = None
    if want_progress(progress) and the_plan.targets:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(the_plan.targets), desc=f"{path} per {per}",
                   unit=f" {per}s", leave=True)  # the final count stays

        def on_progress(done: int, total: int, eta: float) -> None:
            assert bar is not None
            bar.n = done
            bar.set_postfix_str(f"budget >= {_eta_text(eta)}" if eta >= 1 else "",
                                refresh=False)
            bar.refresh()

    rows: list[dict[str, Any]] = []
    try:
        for target, items in fanout.run(session, path, the_plan, key=key,
                                        page_size=page_size, max_items=max_items,
                                        workers=workers, on_progress=on_progress,
                                        warn_stacklevel=5):
            added = target.columns()
            rows.extend({**added, **item, **added} if isinstance(item, Mapping)
                        else {**added, "value": item} for item in items)
    finally:
        if bar is not None:
            bar.close()
    frame = records_frame(rows)
    if not rows:
        import pandas as pd

        columns = ["organizationId", "teamId", "zone"] if per == "team" else \
            ["organizationId", "zone"]
        frame = pd.DataFrame(columns=columns)
    return frame


def orgs_frame(session: MakeSession) -> pd.DataFrame:
    """The user's organizations: ``id``, ``name``, ``zone`` and ``apiLimit`` (where Make
    gives it: organizations of the zone that answered, or learned since)."""
    import pandas as pd

    zone_map = session._zone_map
    zone_map.load_orgs(session, quiet=False)
    rows = [{"id": o.id, "name": o.name, "zone": o.zone, "apiLimit": o.api_limit}
            for o in (zone_map.orgs[i] for i in zone_map.order)]
    return pd.DataFrame(rows, columns=["id", "name", "zone", "apiLimit"]).astype(
        {"apiLimit": "Int64"})


def teams_frame(session: MakeSession, *, workers: int | None = None) -> pd.DataFrame:
    """Every team of every organization: ``id``, ``name``, ``organizationId``, ``zone``."""
    import pandas as pd

    from . import fanout

    the_plan = fanout.plan(session, "team", workers=workers)
    fanout.warn_skipped(the_plan.skipped)
    rows = [{"id": t.team_id, "name": t.name, "organizationId": t.organization_id,
             "zone": t.zone} for t in the_plan.targets]
    return pd.DataFrame(rows, columns=["id", "name", "organizationId", "zone"])
