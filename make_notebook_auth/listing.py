"""Make API calls that return data: JSON with Make's errors, paginated listings, and retries.

Protocol core: no pandas, no UI, no persistence.

- :class:`MakeRetry` is urllib3's ``Retry`` with a time budget. :func:`retrying_adapter` mounts
  it on every ``MakeSession`` (``http://`` and ``https://``), so plain ``session.get`` gets the
  same bounded retries, but still returns the final response instead of raising.
  Retried: 429 (Make's per-organisation rate limit) and 500/502/503/504, and dropped
  connections, on idempotent methods only (GET, HEAD, OPTIONS, PUT, DELETE, TRACE). A
  connection that could not be opened is retried for every method (nothing was sent). A POST
  or PATCH is never re-sent: its 429 or 5xx comes back to the caller.
  Waits follow ``Retry-After`` when present, else exponential backoff (0, 1, 2, 4, 8 s);
  at most :data:`STATUS_RETRIES` retries, and the whole series stays within
  :data:`RETRY_BUDGET` seconds (a longer ``Retry-After`` gives up at once).
  A request to an organization with a rate budget (see ``ratelimit.py``) waits for it
  instead: a 429 slows the budget down, and each retry draws from it (bounded by the
  budget's ``max_wait``). Look-ups sent under ``ratelimit.no_retries()`` are tried once.
- :func:`get_json` turns a non-2xx answer into :class:`~make_notebook_auth.MakeAPIError`.
- :func:`iter_pages` / :func:`paginate` walk Make's ``pg[offset]`` / ``pg[limit]`` pagination.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from . import ratelimit
from ._http import Deadline, DeadlineAdapter, extend_deadline, json_body
from .errors import ListingError, MakeAPIError, MakeNetworkError

if TYPE_CHECKING:
    from .session import MakeSession

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000  # Make's largest pg[limit]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
STATUS_RETRIES = 5  # retries after a 429 / 5xx answer
CONNECT_RETRIES = 2  # retries when a connection cannot be opened (nothing was sent)
READ_RETRIES = 2  # retries of an idempotent request whose connection dropped
BACKOFF_FACTOR = 0.5  # waits 0, 1, 2, 4, 8 s without Retry-After
BACKOFF_MAX = 8.0
RETRY_BUDGET = 20.0  # seconds from the first failure; a wait beyond it gives up instead
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
API_DEADLINE = 120.0  # seconds for one json()/page call, retries included; then MakeNetworkError
MAX_PAGES = 10_000  # pages one listing may take (use max_items or a larger page_size beyond)

Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


# --- retries -----------------------------------------------------------------------------


class MakeRetry(Retry):
    """urllib3 ``Retry`` bounded in time as well as in count.

    ``budget`` seconds, counted from the first failed attempt: when the next wait (the
    server's ``Retry-After`` or the backoff) would end after it, the retries stop and the last
    answer is returned (or the connection error raised).
    """

    def __init__(self, *args: Any, budget: float = RETRY_BUDGET,
                 started: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.started = started

    def new(self, **kw: Any) -> MakeRetry:
        kw.setdefault("budget", self.budget)
        kw.setdefault("started", self.started)
        return super().new(**kw)

    def planned_wait(self, response: Any = None) -> float:
        """Seconds :meth:`sleep` will wait before the next attempt."""
        if response is not None and self.respect_retry_after_header:
            try:
                after = self.get_retry_after(response)
            except InvalidHeader:
                after = None
            if after:
                return float(after)
        return self.get_backoff_time()

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> MakeRetry:
        if ratelimit.quiet():  # a look-up: tried once
            raise MaxRetryError(_pool, url or "", error or ResponseError("not retried"))  # type: ignore[arg-type]
        now = time.monotonic()
        started = self.started if self.started is not None else now
        new = super().increment(method, url, response=response, error=error, _pool=_pool,
                                _stacktrace=_stacktrace)
        new.started = started
        rate = ratelimit.current()
        if rate is not None and rate.limit is not None:
            # paced: the budget decides when the retry goes (sleep() waits for it)
            if response is not None and getattr(response, "status", None) == 429:
                after = _retry_after(response.headers.get("Retry-After"))
                wait = rate.note_429(after)
            else:
                wait = new.planned_wait(response)
            if now + wait - started > rate.max_wait:
                reason = error or ResponseError(
                    f"gave up: waiting {wait:.1f} s more would exceed the "
                    f"{rate.max_wait:.0f} s a request waits for its rate budget")
                raise MaxRetryError(_pool, url or "", reason)  # type: ignore[arg-type]
            return new
        if rate is not None and response is not None and \
                getattr(response, "status", None) == 429:
            rate.note_429(_retry_after(response.headers.get("Retry-After")))
        wait = new.planned_wait(response)
        if now + wait - started > self.budget:
            reason = error or ResponseError(
                f"gave up: waiting {wait:.1f} s more would exceed the {self.budget:.0f} s "
                "retry budget"
            )
            raise MaxRetryError(_pool, url or "", reason)  # type: ignore[arg-type]
        return new

    def sleep(self, response: Any = None) -> None:
        rate = ratelimit.current()
        if rate is not None and rate.limit is not None:
            if response is not None and getattr(response, "status", None) != 429:
                super().sleep(response)  # a 5xx: back off as usual, then wait for the budget
            extend_deadline(rate.acquire())
            return
        super().sleep(response)


def make_retry() -> MakeRetry:
    """The retry policy every ``MakeSession`` uses (see the module docstring)."""
    return MakeRetry(
        total=STATUS_RETRIES + CONNECT_RETRIES + READ_RETRIES,
        connect=CONNECT_RETRIES,
        read=READ_RETRIES,
        status=STATUS_RETRIES,
        other=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX,
        respect_retry_after_header=True,
        raise_on_status=False,  # plain session.get returns the last answer, as requests does
        raise_on_redirect=False,
    )


def retrying_adapter() -> HTTPAdapter:
    return DeadlineAdapter(max_retries=make_retry())


# --- errors ------------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return Retry().parse_retry_after(value)
    except (InvalidHeader, ValueError, OverflowError):
        return None


def _tries(resp: requests.Response) -> int:
    retries = getattr(resp.raw, "retries", None)
    history = getattr(retries, "history", None) or ()
    return len(history) + 1


def _bearer(resp: requests.Response) -> str | None:
    """The bearer token the request carried, if any."""
    auth = resp.request.headers.get("Authorization") if resp.request is not None else None
    if isinstance(auth, str) and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def api_error(resp: requests.Response) -> MakeAPIError:
    """A ``MakeAPIError`` for a non-2xx answer, from Make's ``{"message", "detail", ...}``."""
    body = json_body(resp)
    code = message = detail = None
    suberrors: list[Any] = []
    if isinstance(body, dict):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
        detail = body.get("detail") if isinstance(body.get("detail"), str) else None
        if isinstance(body.get("suberrors"), list):
            suberrors = body["suberrors"]
        if message is None and isinstance(body.get("error"), str):  # OAuth-style body
            message = body["error"]
            desc = body.get("error_description")
            detail = desc if isinstance(desc, str) else detail
    if message is None:
        message = resp.reason or None
    bearer = _bearer(resp)
    if bearer:  # an API that echoes the token it refused must not put it in a message
        message, detail = (t.replace(bearer, "***") if t else t for t in (message, detail))
        suberrors = [{**sub, "message": sub["message"].replace(bearer, "***")}
                     if isinstance(sub, dict) and isinstance(sub.get("message"), str) else sub
                     for sub in suberrors]
    status = resp.status_code
    method = (resp.request.method or "GET").upper() if resp.request is not None else "GET"
    after = _retry_after(resp.headers.get("Retry-After"))
    tries = _tries(resp)
    wait = f"{after:.0f} s" if after else "a minute"
    hint: str | None = None
    if status == 429:
        if method in IDEMPOTENT_METHODS:
            hint = (f"Make's per-organization rate limit (requests per minute) was exceeded; "
                    f"gave up after {tries} tr{'y' if tries == 1 else 'ies'}. "
                    f"Wait {wait} and run it again.")
        else:
            hint = (f"Make's per-organization rate limit (requests per minute) was exceeded. "
                    f"The {method} request was not processed, and it was not retried "
                    f"automatically ({method} is not idempotent): wait {wait} and send it again.")
    elif status >= 500:
        if method in IDEMPOTENT_METHODS:
            hint = (f"Make's API failed; gave up after {tries} tr{'y' if tries == 1 else 'ies'}."
                    " Try again later.")
        else:
            hint = (f"Make's API failed. The {method} request was not retried automatically "
                    f"({method} is not idempotent): check whether it took effect before sending "
                    "it again.")
    elif status == 401:
        hint = ("Make refused the access token: the login may have been revoked or expired. "
                "Log in again.")
    elif status == 403:
        hint = ("The login may lack a scope for this call (see MAKE_SCOPES) or access to "
                "this organization or team.")
    return MakeAPIError(
        status, code, message, detail, suberrors=suberrors, url=resp.url,
        retry_after=after, tries=tries, hint=hint,
    )


def send(session: MakeSession, method: str, path: str, params: Params = None,
         **kwargs: Any) -> requests.Response:
    """``session.request`` within :data:`API_DEADLINE`, with Make's error answers raised.

    The whole call (retries and the body included) ends within the deadline: a server that
    trickles its answer raises ``MakeNetworkError`` in time.
    """
    url: str | None = None
    with Deadline(API_DEADLINE) as clock:
        try:
            resp = session.request(method, path, params=params, **kwargs)
        except MakeNetworkError as exc:
            if not clock.expired:
                raise
            url = exc.url
        expired = clock.expired
    if expired:
        raise MakeNetworkError("API", url or session.resolve_url(path),
                               f"no complete answer within {API_DEADLINE:g} s")
    if not 200 <= resp.status_code < 300:
        raise api_error(resp)
    return resp


def get_json(session: MakeSession, path: str, params: Params = None, *, method: str = "GET",
             **kwargs: Any) -> Any:
    """The JSON answer of one API call; a non-2xx answer raises ``MakeAPIError``."""
    resp = send(session, method, path, params, **kwargs)
    if resp.status_code == 204 or not resp.content:
        return None
    try:
        return resp.json()
    except (ValueError, RecursionError):
        pass
    raise MakeAPIError(resp.status_code, message="The API's answer is not JSON", url=resp.url)


# --- listings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a listing. ``last`` is True when no further page will be requested."""

    items: list[Any]
    offset: int
    key: str | None
    last: bool


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _split_params(params: Params) -> tuple[list[tuple[str, Any]], int | None, int | None]:
    """The caller's parameters without ``pg[offset]``/``pg[limit]`` (returned separately)."""
    if params is None:
        pairs: list[tuple[str, Any]] = []
    elif isinstance(params, Mapping):
        pairs = []
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                pairs.extend((name, v) for v in value)
            else:
                pairs.append((name, value))
    elif isinstance(params, (str, bytes)):
        raise TypeError("params must be a mapping or a list of (name, value) pairs")
    else:
        pairs = [(str(name), value) for name, value in params]
    offset = limit = None
    rest = []
    for name, value in pairs:
        if name == "pg[offset]":
            offset = _check_count(int(value), "pg[offset]", 0)
        elif name == "pg[limit]":
            limit = _check_count(int(value), "pg[limit]", 1)
        elif value is not None:
            rest.append((name, value))
    return rest, offset, limit


def _keys_seen(body: Mapping[str, Any]) -> str:
    return ", ".join(repr(k) for k in body) or "none"


def _page_items(body: Any, key: str | None, path: str) -> tuple[list[Any], str | None, Any]:
    if isinstance(body, list):
        return body, None, None
    if not isinstance(body, dict):
        raise ListingError(f"{path!r} did not answer with a listing (got {type(body).__name__}).")
    pg = body.get("pg")
    if key is not None:
        value = body.get(key)
        if not isinstance(value, list):
            raise ListingError(
                f"The answer of {path!r} has no list under {key!r}; keys seen: "
                f"{_keys_seen(body)}."
            )
        return value, key, pg
    lists = [k for k, v in body.items() if k != "pg" and isinstance(v, list)]
    if len(lists) != 1:
        why = "no list" if not lists else "several lists"
        raise ListingError(
            f"Cannot tell which key of the answer of {path!r} holds the listing ({why}); keys "
            f"seen: {_keys_seen(body)}. Pass key=... to name it."
        )
    return body[lists[0]], lists[0], pg


def _fingerprint(item: Any) -> Hashable:
    """What makes an item "already seen": its ``id`` (an int or a string), else its content.

    Two items with the same content have the same ``id``, so a page that repeats earlier
    items is always caught; one with only ids seen before counts as no progress too. The
    ``id`` spares serialising every item (the content hash cost about a third of a listing's
    time)."""
    if isinstance(item, dict):
        ident = item.get("id")
        if isinstance(ident, str) or (isinstance(ident, int) and not isinstance(ident, bool)):
            return (type(ident) is str, ident)
    text = json.dumps(item, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def iter_pages(
    session: MakeSession,
    path: str,
    params: Params = None,
    *,
    key: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_items: int | None = None,
) -> Iterator[Page]:
    """The pages of a listing, requested one at a time as the iterator is consumed.

    Stops after a short page (fewer items than asked for), at ``max_items``, or at an empty
    page: a listing that is an exact multiple of the page size costs one extra, empty page.
    ``page_size`` is capped at Make's maximum (10,000). A ``pg[offset]`` in ``params`` sets
    the first offset; a ``pg[limit]`` replaces ``page_size``.

    A listing that makes no progress (a page whose items all came on earlier pages, as from an
    API that ignores ``pg[offset]``) raises ``ListingError`` (a ``MakeAPIError``), and so does
    one longer than :data:`MAX_PAGES` pages.
    """
    page_size = _check_count(page_size, "page_size", 1)
    if max_items is not None:
        max_items = _check_count(max_items, "max_items", 0)
    rest, offset, limit = _split_params(params)
    limit = min(limit or page_size, MAX_PAGE_SIZE)
    offset = offset or 0
    first_offset = offset
    got = 0
    pages = 0
    seen: set[Hashable] = set()
    starts = getattr(session, "_listing_starts", None)
    while max_items is None or got < max_items:
        if starts is not None:
            starts(path, rest)  # the rate budget of the organization it names, if any
            starts = None
        if pages >= MAX_PAGES:
            raise ListingError(
                f"{path!r} is still going after {MAX_PAGES} pages; stopped. Pass max_items=... "
                "or a larger page_size."
            )
        pages += 1
        want = limit if max_items is None else min(limit, max_items - got)
        query = [*rest, ("pg[offset]", offset), ("pg[limit]", want)]
        body = get_json(session, path, query)
        items, key, pg = _page_items(body, key, path)
        served = want
        if isinstance(pg, dict):  # a server that caps pg[limit] lower says so in the echo
            echoed = pg.get("limit")
            if isinstance(echoed, int) and not isinstance(echoed, bool) and 0 < echoed < want:
                served = echoed
        if max_items is not None and len(items) > max_items - got:
            items = items[: max_items - got]
        prints = [_fingerprint(item) for item in items]
        if prints and all(p in seen for p in prints):
            raise ListingError(
                f"{path!r} answered pg[offset]={offset} with items it had already sent (from "
                f"pg[offset]={first_offset} on): the listing makes no progress (the endpoint "
                "does not seem to paginate). Stopped; use session.json(...) for one answer."
            )
        seen.update(prints)
        got += len(items)
        last = len(items) < served or (max_items is not None and got >= max_items)
        yield Page(items, offset, key, last)
        if last:
            return
        offset += len(items)


def paginate(
    session: MakeSession,
    path: str,
    params: Params = None,
    *,
    key: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_items: int | None = None,
) -> Iterator[Any]:
    """Every item of a listing, across pages (see :func:`iter_pages`)."""
    for page in iter_pages(session, path, params, key=key, page_size=page_size,
                           max_items=max_items):
        yield from page.items


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MAX_PAGES",
    "MakeRetry",
    "Page",
    "api_error",
    "get_json",
    "iter_pages",
    "make_retry",
    "paginate",
    "retrying_adapter",
]
