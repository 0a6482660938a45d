import math
import os
import subprocess
import sys

import pytest
from sqlalchemy.exc import DBAPIError

from copilotz_orm.config import EmbeddingConfig
from copilotz_orm.embeddings import HashingEmbedder, embedder_for
from copilotz_orm.errors import (
    ConfigError, Conflict, InvalidInput, NodeNotFound, QueryCanceled, TenantNotFound, translate_db_errors,
)


def test_hashing_embedder_is_normalised_and_stable_across_processes():
    vec = HashingEmbedder(384).embed(["The cat sat"])[0]
    assert len(vec) == 384 and math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-9)
    code = "from copilotz_orm.embeddings import HashingEmbedder; print(HashingEmbedder(384).embed(['The cat sat'])[0][:8])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1


def test_hashing_embedder_ranks_shared_words_higher():
    cat, kitten_cat, stocks = HashingEmbedder(384).embed(["the cat sat", "a cat sat down", "stock markets"])
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(cat, kitten_cat) > dot(cat, stocks)


def test_unknown_model_and_wrong_dimension():
    with pytest.raises(ConfigError, match="unknown embedding model"):
        embedder_for(EmbeddingConfig(model="nope"))
    with pytest.raises(ConfigError, match="384"):
        embedder_for(EmbeddingConfig(model="all-MiniLM-L6-v2", dimension=512))
    assert embedder_for(EmbeddingConfig(model="hashing", dimension=1536)).dimension == 1536


class _Orig(Exception):
    def __init__(self, sqlstate):
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("state, error", [
    ("23503", NodeNotFound), ("23505", Conflict), ("57014", QueryCanceled), ("3F000", TenantNotFound),
    ("42P01", TenantNotFound), ("22P05", InvalidInput),
])
def test_sqlstate_mapping(state, error):
    with pytest.raises(error):
        with translate_db_errors("op"):
            raise DBAPIError("stmt", {}, _Orig(state))


def test_unknown_sqlstate_passes_through():
    with pytest.raises(DBAPIError):
        with translate_db_errors():
            raise DBAPIError("stmt", {}, _Orig("XX000"))
