"""Cleaning of caller-supplied text and JSON before it reaches PostgreSQL.

PostgreSQL text cannot hold NUL, and UTF-8 cannot encode lone surrogates. NULs are removed and
lone surrogates replaced by U+FFFD (documented behaviour), so such input never becomes a driver
error halfway through a write.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import EmbeddingMismatch, InvalidInput


def clean_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value


def clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def clean_json(value: Any, where: str = "data") -> Any:
    """Clean every string (keys too) in a JSON-like value; refuse what JSON cannot hold."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where}: JSON object keys must be strings, got {key!r}")
            out[clean_text(key)] = clean_json(item, where)
        return out
    if isinstance(value, (list, tuple)):
        return [clean_json(item, where) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where}: {value!r} is not valid JSON; use null or a string")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise InvalidInput(f"{where}: {type(value).__name__} is not JSON-serialisable; convert it first")


def check_vector(vector: Any, dimension: int, model: str) -> list[float]:
    """Return `vector` as floats if it fits the embedding space, else raise a typed error."""
    try:
        values = [float(x) for x in vector]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"an embedding must be a sequence of numbers: {exc}") from None
    if len(values) != dimension:
        raise EmbeddingMismatch(
            f"this schema stores {dimension}-dimensional vectors of model {model!r}; "
            f"got a vector of {len(values)} dimensions"
        )
    if not all(math.isfinite(x) for x in values):
        raise InvalidInput("an embedding must not contain NaN or infinite values")
    if not any(values):
        raise InvalidInput("an all-zero embedding has no direction; cosine distance is undefined for it")
    return values
