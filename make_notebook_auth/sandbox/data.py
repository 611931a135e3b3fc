"""Synthetic, deterministic Make-like data for the sandbox: demo users, organizations, teams,
scenarios, connections, data stores, hooks and scenario logs.

Everything here is made up (``example.test`` addresses, ``.invalid`` hook hosts) and generated
from fixed seeds, so two runs of the sandbox serve the same items. Large collections are built
lazily, on first use, and cached.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache, lru_cache
from typing import Any

Item = dict[str, Any]

_EPOCH = datetime(2024, 1, 8, 9, 0, 0, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class DemoUser:
    """A person who can sign in on the sandbox's page (no password)."""

    key: str  # what the sign-in page and test fixtures call the user ("alice")
    id: int  # Make-style numeric user id; the OpenID ``sub`` is its string form
    name: str
    email: str
    organization_ids: tuple[int, ...]
    team_ids: tuple[int, ...]
    timezone: str = "Europe/Prague"
    language: str = "en"
    #: teams listed in the user's organizations that the user may not read (SC403)
    hidden_team_ids: tuple[int, ...] = ()

    @property
    def sub(self) -> str:
        return str(self.id)

    def claims(self) -> dict[str, str]:
        """The claims userinfo returns (and the ID token carries)."""
        return {"sub": self.sub, "name": self.name, "email": self.email}

    def auth_user(self) -> Item:
        """``GET /users/me`` body item, shaped like Make's ``authUser``."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "language": self.language,
            "timezoneId": 113 if self.timezone == "Europe/Prague" else 2,
            "localeId": 1,
            "countryId": 1,
            "features": {"allow_apps": True, "ai_mapping": False},
            "avatar": None,
            "lastLogin": _iso(_EPOCH + timedelta(days=180, hours=self.id % 24)),
            "timezone": self.timezone,
            "locale": "en-US",
            "emailNotifications": True,
            "hasPassword": False,
            "tfaEnabled": False,
            "usersAdminsRoleId": None,
        }


DEMO_USERS: dict[str, DemoUser] = {
    user.key: user
    for user in (
        DemoUser("alice", 1001, "Alice Analyst", "alice@example.test", (1, 2, 4), (1, 2),
                 hidden_team_ids=(6,)),
        DemoUser("bob", 1002, "Bob Builder", "bob@example.test", (1, 2), (1, 3),
                 timezone="America/New_York"),
        DemoUser("carol", 1003, "Carol Controller", "carol@example.test", (3,), (4,)),
        # many teams in two organizations: for measuring fan-outs (see benchmarks/)
        DemoUser("dave", 1004, "Dave Datascale", "dave@example.test", (10, 11), ()),
    )
}


def _license(product: str, api_limit: int, operations: int) -> Item:
    return {"apps": ["all"], "operations": operations, "apiLimit": api_limit,
            "product": product}


#: ``zone`` is what a single-zone sandbox reports; a sandbox with several zones replaces it
#: by ``127.0.0.1:PORT`` of zone number ``ZONE_OF[org]`` (0 is the home zone, the main port).
ORGANIZATIONS: dict[int, Item] = {
    1: {"id": 1, "name": "Acme Analytics", "zone": "eu1.make.com", "countryId": 1,
        "timezoneId": 113, "license": _license("Pro", 120, 40000), "productName": "Pro"},
    2: {"id": 2, "name": "Globex Research", "zone": "us1.make.com", "countryId": 2,
        "timezoneId": 2, "license": _license("Teams", 240, 150000), "productName": "Teams"},
    3: {"id": 3, "name": "Initech Finance", "zone": "eu2.make.com", "countryId": 3,
        "timezoneId": 113, "license": _license("Core", 60, 10000), "productName": "Core"},
    4: {"id": 4, "name": "Stark Labs", "zone": "eu2.make.com", "countryId": 1,
        "timezoneId": 113, "license": _license("Core", 60, 10000), "productName": "Core"},
    10: {"id": 10, "name": "Massive Dynamic", "zone": "us1.make.com", "countryId": 2,
         "timezoneId": 2, "license": _license("Enterprise", 1000, 800000),
         "productName": "Enterprise"},
    11: {"id": 11, "name": "Tiny Core Co", "zone": "eu2.make.com", "countryId": 1,
         "timezoneId": 113, "license": _license("Core", 60, 10000), "productName": "Core"},
}

ZONE_OF: dict[int, int] = {1: 0, 2: 1, 3: 2, 4: 2, 10: 1, 11: 2}
ZONES = 3  # zones a sandbox serves by default

TEAMS: dict[int, Item] = {
    1: {"id": 1, "name": "Data Team", "organizationId": 1},
    2: {"id": 2, "name": "Marketing Ops", "organizationId": 1},
    3: {"id": 3, "name": "Research Automation", "organizationId": 2},
    4: {"id": 4, "name": "Finance", "organizationId": 3},
    5: {"id": 5, "name": "Lab Ops", "organizationId": 4},
    6: {"id": 6, "name": "Board Room", "organizationId": 4},  # alice may not read it
}
#: Massive Dynamic: 40 teams (latency-bound fan-out); Tiny Core Co: 68 teams (limit-bound).
BIG_TEAMS = {10: range(101, 141), 11: range(201, 269)}
for _org, _ids in BIG_TEAMS.items():
    for _n, _team in enumerate(_ids, 1):
        TEAMS[_team] = {"id": _team, "name": f"Squad {_n:02d}", "organizationId": _org}

#: How many scenarios each team has; team 1 has thousands, to make paging matter.
SCENARIO_COUNTS: dict[int, int] = {1: 2500, 2: 180, 3: 640, 4: 35, 5: 12, 6: 7,
                                   **{t: 12 for t in BIG_TEAMS[10]},
                                   **{t: 3 for t in BIG_TEAMS[11]}}

_COLLEAGUES: tuple[tuple[int, str], ...] = (
    (1101, "Dana Dataops"), (1102, "Evan Engineer"), (1103, "Fiona Forecast"),
    (1104, "Gus Growth"), (1105, "Hana Hooks"),
)

_APPS: tuple[tuple[str, str], ...] = (
    ("google-sheets", "Google Sheets"), ("gmail", "Gmail"), ("slack", "Slack"),
    ("http", "HTTP"), ("json", "JSON"), ("airtable", "Airtable"), ("hubspotcrm", "HubSpot CRM"),
    ("notion", "Notion"), ("shopify", "Shopify"), ("typeform", "Typeform"),
    ("salesforce", "Salesforce"), ("openai-gpt-3", "OpenAI"), ("datastore", "Data store"),
    ("google-drive", "Google Drive"), ("mailchimp", "Mailchimp"), ("stripe", "Stripe"),
    ("trello", "Trello"), ("microsoft-excel", "Microsoft Excel"),
)

_PURPOSES: tuple[str, ...] = (
    "Sync new {a} records to {b}", "Weekly {a} report to {b}", "Enrich {a} leads via {b}",
    "Archive {a} attachments in {b}", "Alert {b} on failed {a} payments",
    "Backfill {b} from {a} export", "Deduplicate {a} contacts into {b}",
    "Daily KPI snapshot from {a} to {b}", "Route {a} tickets to {b}",
    "Summarise {a} feedback with {b}",
)

_SCHEDULES: tuple[Item, ...] = (
    {"type": "indefinitely", "interval": 900},
    {"type": "indefinitely", "interval": 3600},
    {"type": "indefinitely", "interval": 86400},
    {"type": "immediately"},
    {"type": "on-demand"},
    {"type": "once", "date": "2024-09-01T06:00:00.000Z"},
    {"type": "daily", "time": "07:30"},
)


def find_user(subject: str) -> DemoUser | None:
    """A demo user by key (``alice``) or by OpenID subject (``1001``)."""
    if subject in DEMO_USERS:
        return DEMO_USERS[subject]
    for user in DEMO_USERS.values():
        if user.sub == subject:
            return user
    return None


def user_for_subject(subject: str) -> DemoUser:
    """The demo user for ``subject``, or a stable guest (member of organization 1, teams 1
    and 2) for subjects of another OpenID provider serving this API."""
    known = find_user(subject)
    if known is not None:
        return known
    digest = int(hashlib.sha256(subject.encode()).hexdigest()[:6], 16)
    safe = "".join(ch for ch in subject if ch.isalnum())[:32] or "guest"
    return DemoUser(safe, 500000 + digest, f"Guest {safe}", f"{safe.lower()}@example.test",
                    (1,), (1, 2))


def _people(team_id: int) -> list[Item]:
    members = [u for u in DEMO_USERS.values() if team_id in u.team_ids]
    people = [{"id": u.id, "name": u.name, "email": u.email} for u in members]
    for uid, name in _COLLEAGUES[team_id % 2:: 2]:
        people.append({"id": uid, "name": name,
                       "email": name.split()[0].lower() + "@example.test"})
    return people


def _zone(team_id: int) -> str:
    return str(ORGANIZATIONS[TEAMS[team_id]["organizationId"]]["zone"])


def _id_base(team_id: int) -> int:
    return 10000 * team_id


@cache
def scenarios_for_team(team_id: int) -> tuple[Item, ...]:
    """All scenarios of a team, ordered by id."""
    if team_id not in TEAMS:
        return ()
    rng = random.Random(f"scenarios/{team_id}")
    people = _people(team_id)
    hooks = hooks_for_team(team_id)
    items: list[Item] = []
    for n in range(SCENARIO_COUNTS.get(team_id, 0)):
        (a_pkg, a_name), (b_pkg, b_name) = rng.sample(_APPS, 2)
        extra = [p for p, _ in rng.sample(_APPS, rng.randint(0, 3))]
        packages = sorted({a_pkg, b_pkg, *extra})
        schedule = dict(rng.choice(_SCHEDULES))
        instant = schedule["type"] == "immediately" and bool(hooks)
        created = _EPOCH + timedelta(minutes=37 * n + rng.randint(0, 30))
        edited = created + timedelta(days=rng.randint(0, 200), minutes=rng.randint(0, 900))
        active = rng.random() < 0.62
        paused = active and rng.random() < 0.08
        creator, updater = rng.choice(people), rng.choice(people)
        items.append({
            "id": _id_base(team_id) + n + 1,
            "name": rng.choice(_PURPOSES).format(a=a_name, b=b_name) + f" #{n + 1}",
            "teamId": team_id,
            "hookId": hooks[n % len(hooks)]["id"] if instant else None,
            "deviceId": None,
            "deviceScope": None,
            "concept": False,
            "description": f"Moves data from {a_name} to {b_name}."
            if rng.random() < 0.7 else "",
            "folderId": rng.choice([None, 1, 2, 3]) if team_id != 4 else None,
            "isinvalid": rng.random() < 0.02,
            "islinked": active,
            "isActive": active,
            "islocked": False,
            "isPaused": paused,
            "usedPackages": packages,
            "lastEdit": _iso(edited),
            "scheduling": schedule,
            "iswaiting": False,
            "dlqCount": rng.choice([0, 0, 0, 0, 1, 3]),
            "created": _iso(created),
            "createdByUser": dict(creator),
            "updatedByUser": dict(updater),
            "nextExec": _iso(edited + timedelta(minutes=15)) if active else None,
            "scenarioVersion": 2 if rng.random() < 0.1 else 1,
            "moduleSequenceId": len(packages) + rng.randint(0, 9),
            "type": "scenario",
        })
    return tuple(items)


@cache
def connections_for_team(team_id: int) -> tuple[Item, ...]:
    if team_id not in TEAMS:
        return ()
    rng = random.Random(f"connections/{team_id}")
    items: list[Item] = []
    for n, (pkg, label) in enumerate(rng.sample(_APPS, 9 if team_id != 4 else 4)):
        person = rng.choice(_people(team_id))
        items.append({
            "id": _id_base(team_id) + 500 + n,
            "name": f"My {label} connection ({person['email']})",
            "accountName": pkg,
            "accountLabel": label,
            "packageName": None,
            "expire": None,
            "metadata": {"type": "email", "value": person["email"]},
            "teamId": team_id,
            "theme": "#" + "".join(rng.choice("0123456789abcdef") for _ in range(6)),
            "upgradeable": False,
            "scopes": rng.randint(0, 6),
            "scoped": True,
            "accountType": rng.choice(["oauth", "basic", "apikey"]),
            "editable": False,
            "uid": None,
        })
    return tuple(items)


@cache
def data_stores_for_team(team_id: int) -> tuple[Item, ...]:
    if team_id not in TEAMS:
        return ()
    rng = random.Random(f"data-stores/{team_id}")
    names = ("Leads", "Processed orders", "Dedup keys", "Exchange rates", "Survey answers")
    items: list[Item] = []
    for n, name in enumerate(names[: 5 if team_id != 4 else 2]):
        records = rng.randint(0, 5000)
        items.append({
            "id": _id_base(team_id) + 800 + n,
            "name": name,
            "records": records,
            "size": str(records * rng.randint(80, 400)),
            "maxSize": "10485760",
            "teamId": team_id,
            "datastructureId": _id_base(team_id) + 900 + n,
        })
    return tuple(items)


@cache
def hooks_for_team(team_id: int) -> tuple[Item, ...]:
    if team_id not in TEAMS:
        return ()
    rng = random.Random(f"hooks/{team_id}")
    items: list[Item] = []
    for n in range(6 if team_id != 4 else 2):
        udid = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
        mail = rng.random() < 0.25
        items.append({
            "id": _id_base(team_id) + 700 + n,
            "name": f"{'Mailhook' if mail else 'Webhook'} {n + 1}",
            "teamId": team_id,
            "udid": udid,
            "type": "mail" if mail else "web",
            "packageName": None,
            "theme": "#ffffff",
            "flags": {},
            "editable": False,
            "queueCount": rng.choice([0, 0, 2, 11]),
            "queueLimit": 10000,
            "enabled": True,
            "gone": False,
            "typeName": "gateway-mailhook" if mail else "gateway-webhook",
            "data": {"headers": False, "method": False, "stringify": False},
            "scenarioId": None,
            "url": f"https://hook.{_zone(team_id).split('.')[0]}.sandbox.invalid/{udid}",
        })
    return tuple(items)


def find_scenario(scenario_id: int) -> Item | None:
    team_id = scenario_id // 10000
    for item in scenarios_for_team(team_id):
        if item["id"] == scenario_id:
            return item
    return None


@lru_cache(maxsize=256)
def scenario_logs(scenario_id: int) -> tuple[Item, ...]:
    """Execution logs of one scenario (newest first), generated on demand."""
    scenario = find_scenario(scenario_id)
    if scenario is None:
        return ()
    rng = random.Random(f"logs/{scenario_id}")
    last = datetime.strptime(scenario["lastEdit"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc)
    items: list[Item] = []
    for n in range(rng.randint(0, 60) if scenario["isActive"] else rng.randint(0, 3)):
        status = rng.choices([1, 2, 3], weights=[90, 7, 3])[0]
        items.append({
            "id": f"{scenario_id:x}{n:06x}",
            "imtId": f"sandbox-{scenario_id}-{n}",
            "type": "auto",
            "authorId": None,
            "instant": scenario["hookId"] is not None,
            "timestamp": _iso(last + timedelta(minutes=15 * (60 - n))),
            "status": status,
            "duration": rng.randint(120, 9000),
            "operations": rng.randint(1, 40),
            "transfer": rng.randint(200, 90000),
            "organizationId": TEAMS[scenario["teamId"]]["organizationId"],
            "teamId": scenario["teamId"],
        })
    return tuple(items)
