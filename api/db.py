"""The database: one engine per URL, sessions as context managers, migrations at start-up.

SQLite (the default) needs no setup; Postgres is a URL away (`DREAMBOOTH_DATABASE_URL=
postgresql+psycopg://...`). Either way the schema comes from the Alembic migrations.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_engines: dict[str, Engine] = {}
_lock = threading.RLock()


def forget_after_fork() -> None:
    """In a forked child: new pools and locks (the parent's connections stay the parent's)."""
    global _lock
    _lock = threading.RLock()
    for made in _engines.values():
        made.dispose(close=False)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA busy_timeout=30000")  # workers and the API write concurrently
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def engine(url: str) -> Engine:
    with _lock:
        if url not in _engines:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                made = create_engine(url, connect_args={"timeout": 30})
                event.listen(made, "connect", _sqlite_pragmas)
            else:
                made = create_engine(url, pool_pre_ping=True)
            _engines[url] = made
        return _engines[url]


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (idempotent; safe from several processes)."""
    from alembic import command

    with _lock:
        command.upgrade(alembic_config(url), "head")


@contextlib.contextmanager
def session(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    made = sessionmaker(engine(url), expire_on_commit=False)()
    try:
        yield made
        made.commit()
    except BaseException:
        made.rollback()
        raise
    finally:
        made.close()
