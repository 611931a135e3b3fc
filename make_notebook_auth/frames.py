"""pandas edge: turn userinfo claims and API listings into DataFrames (pandas imported lazily)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _is_nested(items: list[Mapping[str, Any]]) -> bool:
    return any(isinstance(v, dict) for item in items for v in item.values())


def records_frame(items: Iterable[Mapping[str, Any]], index: list[str] | None = None,
                  index_name: str | None = None) -> pd.DataFrame:
    """A DataFrame of records; nested dicts flattened to ``a.b`` columns, first-seen order."""
    import pandas as pd

    rows = [dict(item) for item in items]
    if rows and _is_nested(rows):
        frame = pd.json_normalize(rows)
    else:
        frame = pd.DataFrame(rows)
    if index is not None:
        frame.index = pd.Index(index, name=index_name)
    return frame


def userinfo_frame(claims_by_profile: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per profile (the index), one column per userinfo claim."""
    profiles = list(claims_by_profile)
    return records_frame([claims_by_profile[p] for p in profiles], index=profiles,
                         index_name="profile")
