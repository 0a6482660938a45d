from pathlib import Path

import pytest

from copilotz_orm.config import DbConfig, parse_url
from copilotz_orm.errors import ConfigError


def test_memory():
    assert parse_url(":memory:").kind == "memory"


@pytest.mark.parametrize("raw, expected", [
    ("file:./data/x.db", Path("./data/x.db").resolve()),
    ("file:///abs/path/db", Path("/abs/path/db")),
    ("file:relative", Path("relative").resolve()),
])
def test_file_forms(raw, expected):
    target = parse_url(raw)
    assert target.kind == "file" and target.path == expected


@pytest.mark.parametrize("raw", [
    "postgres://u:p@h:5432/d", "postgresql://u@h/d", "postgresql+asyncpg://u@h:1/d",
])
def test_server_forms_use_asyncpg(raw):
    target = parse_url(raw)
    assert target.kind == "server"
    assert target.url.drivername == "postgresql+asyncpg"


@pytest.mark.parametrize("raw", [
    "", "   ", "mysql://x", "sqlite:///x.db", "file:", "file://host/path", "postgresql://h:notaport/d",
    "http://example", "memory",
])
def test_malformed_urls_are_typed_errors(raw):
    with pytest.raises(ConfigError):
        parse_url(raw)


def test_schema_sql_string_is_one_statement():
    assert DbConfig(schema_sql="CREATE TABLE x (a int)").schema_sql == ["CREATE TABLE x (a int)"]


def test_env_url(monkeypatch):
    monkeypatch.setenv("COPILOTZ_DATABASE_URL", "file:/tmp/x")
    assert DbConfig().resolved_url() == "file:/tmp/x"
    monkeypatch.delenv("COPILOTZ_DATABASE_URL")
    assert DbConfig().resolved_url() == ":memory:"


def test_libpq_parameters_map_to_asyncpg_and_unknown_ones_are_refused():
    target = parse_url("postgresql://u:pw@h/d?sslmode=require&connect_timeout=3&application_name=x")
    assert target.connect_args == {"ssl": "require", "timeout": 3.0,
                                   "server_settings": {"application_name": "x"}}
    with pytest.raises(ConfigError, match="unsupported URL parameter"):
        parse_url("postgresql://u@h/d?foo=1")


@pytest.mark.parametrize("raw", ["postgresq://admin:S3cretPW@host/prod", "postgresql://admin:S3cretPW@[::1/prod",
                                 "postgresql://admin:S3cretPW@h/d?foo=1"])
def test_passwords_never_appear_in_errors(raw):
    with pytest.raises(ConfigError) as info:
        parse_url(raw)
    assert "S3cretPW" not in str(info.value)


def test_empty_url_is_an_error_not_memory():
    with pytest.raises(ConfigError):
        parse_url(DbConfig(url="").resolved_url())


@pytest.mark.parametrize("raw", ["postgresql://u@h/d?sslmode=bogus", "postgresql://u@h/d?host=/tmp&port=x"])
def test_bad_url_parameter_values(raw):
    with pytest.raises(ConfigError):
        parse_url(raw)
