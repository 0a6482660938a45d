"""Model metadata: naming convention, placeholder schema, time zones; statement builders."""

from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import configure_mappers

from copilotz_orm.models import PLACEHOLDER_SCHEMA, Base
from copilotz_orm.sql.traversal import traverse


def test_every_constraint_and_index_is_named_by_convention():
    configure_mappers()
    for table in Base.metadata.tables.values():
        assert table.schema == PLACEHOLDER_SCHEMA
        for item in [*table.constraints, *table.indexes]:
            assert item.name, f"unnamed {item!r} on {table.name}"
            assert str(item.name).split("_")[0] in {"pk", "fk", "uq", "ck", "ix"}


def test_timestamps_are_timezone_aware():
    for table in Base.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, DateTime):
                assert column.type.timezone, f"{table.name}.{column.name}"


def test_traversal_is_one_recursive_cte_translated_to_the_tenant():
    stmt = traverse("n1", max_depth=3, direction="both", edge_types=["A"])
    sql = str(stmt.compile(dialect=postgresql.dialect(), schema_translate_map={PLACEHOLDER_SCHEMA: "acme"},
                           render_schema_translate=True))
    assert sql.startswith("WITH RECURSIVE")
    assert sql.count("RECURSIVE") == 1
    assert "UNION ALL" in sql  # both directions walk each edge either way
    assert "acme.nodes" in sql and "acme.edges" in sql
    assert "copilotz." not in sql


def test_parse_large_leaves_the_collector_as_it_found_it():
    import gc

    import pydantic
    import pytest

    from copilotz_orm.schemas import Traversal, parse_large

    raw = ('{"start_id": "a", "nodes": [{"node": {"id": "a", "namespace": "n", "type": "t", "name": "a", '
           '"created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00"}, "depth": 0}], '
           '"edges": []}')
    assert parse_large(Traversal, raw) == Traversal.model_validate_json(raw)
    assert gc.isenabled()
    with pytest.raises(pydantic.ValidationError):
        parse_large(Traversal, raw.replace('"depth": 0', '"depth": "deep"'))
    assert gc.isenabled()
    gc.disable()
    try:
        parse_large(Traversal, raw)
        assert not gc.isenabled()  # a host that turned it off keeps it off
    finally:
        gc.enable()
