"""Alembic environment: migrates the connection tagwatch.schema hands over (never opens its own)."""

from alembic import context


def run() -> None:
    """Every pending revision in the caller's transaction (BEGIN IMMEDIATE, or BEGIN under a lock)."""
    context.configure(connection=context.config.attributes["connection"], transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:  # run by Alembic (a plain import, as in tests, is not)
    run()
