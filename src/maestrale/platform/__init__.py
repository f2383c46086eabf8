"""Shared infrastructure every component builds on; it imports nothing of Maestrale but errors and config.

- `maestrale.platform.db`: engines (SQLite WAL and write locks, fork-safe pools) and the migration
  glue of the one Alembic history (`maestrale/migrations`);
- `maestrale.platform.clock`: the UTC clock (`utcnow`, `aware`);
- `maestrale.platform.tables`: the shared `MetaData` and the infrastructure tables (`outbox`,
  `processed_events`); each component declares its own tables on that metadata;
- `maestrale.platform.outbox`: the transactional outbox (events written with the change they announce);
- `maestrale.platform.ledger`: the processed-events ledger of idempotent consumers;
- `maestrale.platform.pruning`: the scheduled pruning that keeps both tables bounded.

>>> from maestrale.platform.clock import utcnow
>>> utcnow().tzinfo is not None
True
"""
