"""Fan-out listings: the same listing for every team (or organization) the user can see.

``make.frame("scenarios", per="team")`` lists the user's organizations (once per session),
each organization's teams (on its zone), then runs the listing once per team with
``teamId=...`` added, several at a time (a small thread pool, ``session.workers``, default 6),
each request drawing from its organization's rate budget (``ratelimit.py``). Items keep the
API's order and come in a fixed order: organization (as ``organizations`` lists them), team
(as ``teams`` lists them), then the listing's own order. Each item gets ``organizationId``,
``teamId`` (per team) and ``zone``.

A team (or organization) the user may not read, answering 403 ``SC403``, is skipped and
reported in one :class:`SkippedWarning` at the end; any other error stops the fan-out and is
raised. ``params`` naming an ``organizationId`` restrict a per-team fan-out to that
organization's teams.

Core module: no pandas, no printing (the progress bar lives in ``frames.py``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import listing, ratelimit
from .errors import MakeAPIError, MakeConfigError, SkippedWarning

if TYPE_CHECKING:
    from .listing import Params
    from .session import MakeSession

PER = ("team", "organization")
MAX_WORKERS = 32

#: ``on_progress(done, total, eta_budget)``: targets finished, targets in all, and the least
#: time (seconds) the rate budgets need for the rest.
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class Target:
    """One listing of a fan-out: a team (``team_id``) or a whole organization."""

    organization_id: int
    team_id: int | None
    zone: str | None
    name: str | None

    def label(self) -> str:
        what = f"team {self.team_id}" if self.team_id is not None else \
            f"organization {self.organization_id}"
        return f"{what} ({self.name})" if self.name else what

    def columns(self) -> dict[str, Any]:
        if self.team_id is None:
            return {"organizationId": self.organization_id, "zone": self.zone}
        return {"organizationId": self.organization_id, "teamId": self.team_id,
                "zone": self.zone}


def _is_forbidden(exc: MakeAPIError) -> bool:
    return exc.code == "SC403" or (exc.status == 403 and exc.code is None)


def _pairs(params: Params) -> list[tuple[str, Any]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        out: list[tuple[str, Any]] = []
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                out.extend((name, v) for v in value)
            else:
                out.append((name, value))
        return out
    if isinstance(params, (str, bytes)):
        raise TypeError("params must be a mapping or a list of (name, value) pairs")
    return [(str(name), value) for name, value in params]


def check_workers(workers: int | None, session: MakeSession) -> int:
    value = session.workers if workers is None else workers
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer from 1 to {MAX_WORKERS}, got {value!r}")
    return value


@dataclass
class Plan:
    targets: list[Target]
    params: list[tuple[str, Any]]  # the caller's, without organizationId/teamId
    skipped: list[str]


def plan(session: MakeSession, per: str, params: Params = None, *,
         workers: int | None = None) -> Plan:
    """The targets of a fan-out (lists organizations and, per team, their teams)."""
    if per not in PER:
        raise ValueError(f"per must be one of {PER}, got {per!r}")
    workers = check_workers(workers, session)
    pairs = _pairs(params)
    only = {int(v) for n, v in pairs if n == "organizationId"}
    if any(n == "teamId" for n, _ in pairs):
        raise ValueError("A fan-out adds teamId itself: leave it out of params.")
    rest = [(n, v) for n, v in pairs if n != "organizationId"]
    zone_map = session._zone_map
    zone_map.load_orgs(session, quiet=False)
    orgs = [zone_map.orgs[i] for i in zone_map.order if not only or i in only]
    missing = only - {o.id for o in orgs}
    if missing:
        raise MakeConfigError(
            f"Organization {sorted(missing)[0]} is not among this login's organizations.")
    for org in orgs:
        if org.refused is not None:
            raise MakeConfigError(
                f"Organization {org.id} is in zone {org.zone!r}, which is not a Make zone; "
                "refusing to send it the token.")
    skipped: list[str] = []

    def prepare(org_id: int) -> list[Any] | None:
        session._ensure_budget(org_id)
        if per == "organization":
            return None
        try:
            return zone_map.load_teams(session, org_id, quiet=False)
        except MakeAPIError as exc:
            if _is_forbidden(exc):
                return [exc]
            raise

    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(orgs))),
                            thread_name_prefix="make-fanout") as pool:
        prepared = list(pool.map(prepare, [o.id for o in orgs]))
    targets: list[Target] = []
    for org, teams in zip(orgs, prepared, strict=True):
        if per == "organization":
            targets.append(Target(org.id, None, org.zone, org.name))
        elif teams and isinstance(teams[0], MakeAPIError):
            skipped.append(f"organization {org.id} ({org.name}): its teams")
        else:
            targets.extend(Target(org.id, t.id, org.zone, t.name) for t in teams or [])
    return Plan(targets, rest, skipped)


def run(session: MakeSession, path: str, the_plan: Plan, *, key: str | None = None,
        page_size: int = listing.DEFAULT_PAGE_SIZE, max_items: int | None = None,
        workers: int | None = None, on_progress: Progress | None = None,
        warn_stacklevel: int = 4) -> Iterator[tuple[Target, list[Any]]]:
    """Run the listing for every target; yield ``(target, items)`` in the plan's order.

    ``max_items`` applies to each target's listing. Emits one :class:`SkippedWarning` at the
    end for the targets (and planning steps) that answered SC403.
    """
    workers = check_workers(workers, session)
    targets = the_plan.targets
    skipped = list(the_plan.skipped)
    total = len(targets)
    done = 0
    left_per_org: dict[int, int] = {}
    for t in targets:
        left_per_org[t.organization_id] = left_per_org.get(t.organization_id, 0) + 1
    lock = threading.Lock()

    def tick(target: Target) -> None:
        nonlocal done
        if on_progress is None:
            with lock:
                done += 1
            return
        with lock:
            done += 1
            left_per_org[target.organization_id] -= 1
            eta = 0.0
            for org_id, left in left_per_org.items():
                budget = ratelimit.known(org_id)
                if left and budget is not None:
                    eta = max(eta, budget.eta(left))
            on_progress(done, total, eta)

    def job(target: Target) -> list[Any] | MakeAPIError:
        extra = ("teamId", target.team_id) if target.team_id is not None else \
            ("organizationId", target.organization_id)
        try:
            items = list(listing.paginate(session, path, [*the_plan.params, extra], key=key,
                                          page_size=page_size, max_items=max_items))
        except MakeAPIError as exc:
            if not _is_forbidden(exc):
                raise
            return exc
        finally:
            tick(target)
        return items

    if on_progress is not None:
        on_progress(0, total, 0.0)
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, total)),
                              thread_name_prefix="make-fanout")
    futures: list[Future[list[Any] | MakeAPIError]] = []
    try:
        futures = [pool.submit(job, t) for t in targets]
        for target, future in zip(targets, futures, strict=True):
            result = future.result()
            if isinstance(result, MakeAPIError):
                skipped.append(target.label())
                continue
            yield target, result
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
    warn_skipped(skipped, warn_stacklevel)


def warn_skipped(skipped: list[str], stacklevel: int = 4) -> None:
    """One :class:`SkippedWarning` naming what was skipped (nothing when nothing was)."""
    if skipped:
        shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more"
                                           if len(skipped) > 10 else "")
        warnings.warn(SkippedWarning(
            f"Skipped what this login may not read (Make answered 403 SC403): {shown}. "
            "The results hold the rest."), stacklevel=stacklevel)


def items(session: MakeSession, path: str, params: Params = None, *, per: str = "team",
          key: str | None = None, page_size: int = listing.DEFAULT_PAGE_SIZE,
          max_items: int | None = None, workers: int | None = None) -> Iterator[Any]:
    """Every item of a fan-out, with ``organizationId``, ``teamId`` and ``zone`` added."""
    the_plan = plan(session, per, params, workers=workers)
    for target, found in run(session, path, the_plan, key=key, page_size=page_size,
                             max_items=max_items, workers=workers):
        added = target.columns()
        for item in found:
            yield {**added, **item, **added} if isinstance(item, Mapping) else \
                {**added, "value": item}


__all__ = ["PER", "Plan", "SkippedWarning", "Target", "items", "plan", "run", "warn_skipped"]
