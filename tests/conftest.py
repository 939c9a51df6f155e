"""Shared fixtures: settings on a temporary data dir, a migrated database on each engine, a client.

Every test that takes `database_url` runs on SQLite and, when `SCALEMESH_TEST_POSTGRES_URL` is
set, on PostgreSQL too (in a database of its own, dropped afterwards). Tests needing PostgreSQL or
Redis skip when their variable is unset; `.ci/run` sets both and fails on any skip. The helpers
these fixtures are built from live in `tests/support/`.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from app.aliases import ALIAS_CHANNEL
from app.settings import Settings
from app.users import passwords
from tests.support.api import TEST_PREVIEW_KEY, TEST_SECRET_KEY, Client, OfflineResolver
from tests.support.lookup import World, make_world
from tests.support.proxy import on_storage
from tests.support.services import (
    Emptier,
    PostgresDatabases,
    migrate,
    postgres_url,
    unique_name,
)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so boto3 never goes looking for real ones on the network."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Undo the logging set-up of a `scalemesh` command run in this process (`main([...])`).

    It points the root logger at the `sys.stderr` of that moment, which is the test's capture:
    closed once the test ends, so later tests' logs would write tracebacks into their stderr.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = {name: logging.getLogger(name).level for name in ("uvicorn.access", "piccolo")}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, was in named.items():
        logging.getLogger(name).setLevel(was)


CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
"""Argon2 at its cheapest: a hash in microseconds instead of ~0.1 s of CPU."""


@pytest.fixture(autouse=True)
def _cheap_password_hashing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Hash passwords with `CHEAP_HASHER`, unless the test is marked `argon2_production`.

    Production parameters cost ~0.1 s of CPU per hash on purpose, and every sign-up pays two
    (the hash, then the sign-in's check). Hashes keep their parameters, so a cheap hash still
    verifies. `scalemesh user create` in a subprocess keeps the production cost.
    """
    if request.node.get_closest_marker("argon2_production"):
        yield
        return
    monkeypatch.setattr(passwords, "HASHER", CHEAP_HASHER)  # the dummy hash follows it
    yield


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_url())
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated(postgres_databases: PostgresDatabases) -> str:
    url = postgres_databases.new()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgres_emptier(postgres_migrated: str) -> Iterator[Emptier]:
    emptier = Emptier(postgres_migrated)
    yield emptier
    emptier.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "scalemesh.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    request.getfixturevalue("postgres_emptier")()
    url: str = request.getfixturevalue("postgres_migrated")
    return url


@pytest.fixture
def alias_channel() -> str:
    """This test's own alias channel: no other test, nor another xdist worker, hears it."""
    return unique_name(ALIAS_CHANNEL)


@pytest.fixture
def make_settings(tmp_path: Path, alias_channel: str) -> Callable[..., Settings]:
    """Settings from `overrides` on the test's data dir and storage, with its alias channel.

    Sign-up is open unless a test says otherwise: most tests make several accounts the quick
    way. `tests/test_signup.py` covers `first` (the default) and `closed`.
    """

    def make(**overrides: str) -> Settings:
        environ = {
            "SCALEMESH_DATA_DIR": str(tmp_path / "data"),
            "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
            "SCALEMESH_PREVIEW_KEY": TEST_PREVIEW_KEY,
            "SCALEMESH_STORAGE_URL": f"file://{tmp_path / 'storage'}",
            "SCALEMESH_SIGNUP": "open",
        }
        environ.update(overrides)
        return dataclasses.replace(Settings.from_env(environ), alias_channel=alias_channel)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(SCALEMESH_DATABASE_URL=database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    """The API with no reconcile loop and no network: refs resolve to made-up commits."""
    from app.asgi import create_app

    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    with Client(app) as test_client:
        yield test_client


# --- the proxy --------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def proxy_settings(
    request: pytest.FixtureRequest, settings: Settings, make_settings: Callable[..., Settings]
) -> Iterator[Settings]:
    """`settings` on each storage the proxy reads from: a local directory, S3 (moto)."""
    with on_storage(request.param, settings, make_settings) as chosen:
        yield chosen


@pytest.fixture
async def world(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    """A bound database with a user and a project `shop`, for alias lookups; counts queries."""
    return await make_world(settings, monkeypatch)


# --- scheduling under xdist -------------------------------------------------------------------

TOGETHER = ("tests/test_topology.py",)
"""Modules whose tests share one expensive module-scoped fixture (the topology's processes):
run on one worker, in order, instead of each worker that gets one of them starting its own."""


def pytest_sessionstart(session: pytest.Session) -> None:
    """As root, stop at once when builds' uids cannot reach the sandbox in `.venv` (a checkout
    in a mode-0700 directory): every test that starts the app would fail on it, hundreds of
    them; the product's own check says which directory to open."""
    from builder.confine import ConfinementError
    from builder.confinement_choice import build_uid
    from builder.sandbox import find_bwrap
    from builder.sandbox_host import host_user

    uid = build_uid()
    if uid is None:
        return
    try:
        why = host_user(uid).unreachable(find_bwrap())
    except ConfinementError:
        return  # no bwrap at all: the sandbox's own tests say so
    if why is not None:
        pytest.exit(f"the sandbox cannot run from this checkout: {why}", returncode=2)


CHUNK = 4
"""Other tests go out in runs of this many from one module. One test per unit of work cost the
controller a round trip and a scan of all work given so far per test (3,000 empty tests under
cProfile: 7 s in the scheduler against 0.1 s with xdist's plain load scheduling). Smaller than
`TOGETHER`'s modules, which therefore go out first (units are ordered by size)."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Load scheduling in small runs of tests, but each module of `TOGETHER` as one unit."""
    from collections import Counter

    from xdist.scheduler import LoadScopeScheduling

    class ModulesTogether(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log: object) -> None:
            super().__init__(config, log)
            self._scopes: dict[str, str] = {}
            self._counts: Counter[str] = Counter()

        def _split_scope(self, nodeid: str) -> str:
            # First called over the whole collection in order, so each test's run is fixed then.
            scope = self._scopes.get(nodeid)
            if scope is None:
                module = nodeid.split("::", 1)[0]
                if module in TOGETHER:
                    scope = module
                else:
                    scope = f"{module}::{self._counts[module] // CHUNK}"
                    self._counts[module] += 1
                self._scopes[nodeid] = scope
            return scope

    return ModulesTogether(config, log)
