"""Alembic environment: runs migrations on the URL set by `maestrale.platform.db.alembic_config`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

# Every component's tables module registers its tables on the shared metadata: one history for all.
from maestrale import tokens as _tokens  # noqa: F401
from maestrale.monitoring import schema as _monitoring  # noqa: F401
from maestrale.platform.tables import metadata
from maestrale.registry import schema as _registry  # noqa: F401
from maestrale.training import tables as _training  # noqa: F401

config = context.config
_url = config.get_main_option("sqlalchemy.url")
if not _url:  # set by maestrale.platform.db.alembic_config; the stock alembic.ini is not used
    raise RuntimeError("no sqlalchemy.url: run migrations through `maestrale db upgrade`")
url: str = _url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # batch mode lets later migrations ALTER tables on SQLite too
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
