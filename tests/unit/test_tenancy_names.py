import pytest

from copilotz_orm.errors import InvalidSchemaName
from copilotz_orm.tenancy import translate_map, validate_schema_name


@pytest.mark.parametrize("name", ["public", "tenant_a", "_x", "A1", "a" * 63])
def test_valid(name):
    assert validate_schema_name(name) == name


@pytest.mark.parametrize("name", [
    'x"; DROP SCHEMA public CASCADE; --', "a;b", "a b", "1abc", "", "a" * 64, "pg_temp", "PG_x",
    "information_schema", "pg_catalog", "copilotz", "tenant-a", "ténant", None, 5, "a\x00",
])
def test_invalid(name):
    with pytest.raises(InvalidSchemaName):
        validate_schema_name(name)


def test_translate_map_targets_placeholder():
    assert translate_map("acme") == {"copilotz": "acme"}


@pytest.mark.parametrize("name", ["public\n", "acme\n", "acme\r", " acme", "acme "])
def test_no_trailing_or_leading_whitespace(name):
    with pytest.raises(InvalidSchemaName):
        validate_schema_name(name)
