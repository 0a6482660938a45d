"""Shared fixtures. Integration tests run against every backend: the embedded server and, when
COPILOTZ_TEST_TCP_URL is set (scripts/test and CI set it), a separate server over TCP."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import pytest_asyncio

from copilotz_orm import DbConfig, EmbeddingConfig, create_database

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TCP_ENV = "COPILOTZ_TEST_TCP_URL"


def backend_url(backend: str) -> str:
    if backend == "tcp":
        url = os.environ.get(TCP_ENV)
        if not url:
            pytest.skip(f"TCP lane: set {TCP_ENV} (scripts/test starts a server and sets it)")
        return url
    return ":memory:"


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=["embedded", "tcp"])
async def db(request):
    database = await create_database(DbConfig(url=backend_url(request.param),
                                              embedding=EmbeddingConfig(model="hashing")))
    yield database
    await database.close()


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return f"ns_{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(db):
    """A fresh tenant schema, dropped afterwards."""
    name = f"tenant_{uuid.uuid4().hex[:10]}"
    yield name
    await db.drop_schema(name)


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared data set sits beside the repository)")
    return path
