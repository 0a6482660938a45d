"""Pure statement builders: they build SQLAlchemy statements from the mapped tables, run nothing."""
