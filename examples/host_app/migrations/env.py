"""The host application's Alembic env.py, with copilotz_orm beside its own tables.

Two things make them live together:

* ``include_object=copilotz_migrations.skip_copilotz_tables(connection)``: autogenerate ignores
  the copilotz tables in the schemas that hold them, so it never proposes to drop them (or yours);
* ``copilotz_migrations.upgrade_all(connection)`` after your migrations, on ``alembic upgrade``:
  every copilotz tenant schema is brought to copilotz_orm's latest revision in the same
  transaction. Leave it out if you would rather run ``copilotz-orm migrate --all`` (or
  ``await copilotz_orm.migrate_all(engine)``) yourself, one transaction per schema.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from copilotz_orm import migrations as copilotz_migrations
from models import AppBase

config = context.config


def run_migrations_online() -> None:
    engine = create_engine(os.environ["APP_DATABASE_URL"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=AppBase.metadata,
                          include_object=copilotz_migrations.skip_copilotz_tables(connection))
        with context.begin_transaction():
            context.run_migrations()
            if copilotz_migrations.upgrading():
                for done in copilotz_migrations.upgrade_all(connection):
                    print(f"copilotz schema {done.schema}: {done.before} -> {done.after}")


if context.is_offline_mode():
    raise SystemExit("this example runs online only")
run_migrations_online()
