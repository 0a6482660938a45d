"""Schema names and the schema translation that isolates tenants.

Names are validated here and quoted by the SQLAlchemy dialect; they are never formatted into
SQL by hand.
"""

from __future__ import annotations

import re
from typing import TypeVar

from .errors import InvalidSchemaName
from .models.base import PLACEHOLDER_SCHEMA

B = TypeVar("B")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,62}")
_SYSTEM = {"information_schema", "pg_catalog", "pg_toast", PLACEHOLDER_SCHEMA}


def validate_schema_name(name: object) -> str:
    """Return `name` if it is a safe tenant schema name, else raise :class:`InvalidSchemaName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):  # fullmatch: '$' would allow a final newline
        raise InvalidSchemaName(
            f"invalid schema name {name!r}: use 1-63 letters, digits or underscores, "
            "not starting with a digit"
        )
    lowered = name.lower()
    if lowered.startswith("pg_") or lowered in _SYSTEM:
        raise InvalidSchemaName(
            f"invalid schema name {name!r}: names starting with 'pg_' and system schemas "
            f"({', '.join(sorted(_SYSTEM))}) are reserved"
        )
    return name


def translate_map(schema: str) -> dict[str, str]:
    """The `schema_translate_map` that points our placeholder schema at `schema`."""
    return {PLACEHOLDER_SCHEMA: validate_schema_name(schema)}


def tenant_engine(bind: B, schema: str) -> B:
    """`bind` (an Engine, AsyncEngine or Connection of yours) with our placeholder schema mapped
    to `schema`: bind your own Session or AsyncSession to it to query our models in that tenant.
    Your own tables (no schema, or another schema) are not rewritten."""
    mapping = translate_map(schema)
    # Keep the map you may already have (e.g. {None: "your_tenant"} for your own tables).
    current = bind.get_execution_options().get("schema_translate_map") or {}
    return bind.execution_options(schema_translate_map={**current, **mapping})
