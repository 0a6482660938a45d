"""Cleaning of caller-supplied text and JSON before it reaches PostgreSQL.

PostgreSQL text cannot hold NUL, and UTF-8 cannot encode lone surrogates. NULs are removed and
lone surrogates replaced by U+FFFD (documented behaviour), so such input never becomes a driver
error halfway through a write.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import EmbeddingMismatch, InvalidInput


def clean_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _has_surrogate(value):
        value = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value


KEY_BYTES = 255
"""Longest id, namespace or type (UTF-8 bytes): they sit in B-tree indexes, whose rows must
stay under about 2,700 bytes."""
NAME_BYTES = 2000
"""Longest node name or source id: indexed beside a type."""
JSON_DEPTH = 64


def required(value: Any, what: str, max_bytes: int = KEY_BYTES) -> str:
    """A non-empty string (after cleaning) of at most `max_bytes` UTF-8 bytes."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {type(value).__name__}")
    value = clean_text(value)
    if not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise InvalidInput(f"{what} is {size} bytes long; the limit is {max_bytes} (long text belongs in content)")
    return value


def identifier(value: Any, what: str) -> str:
    """An id, namespace or type: as :func:`required`, but NUL characters and lone surrogates are
    refused rather than cleaned, since cleaning would make two different names one."""
    if isinstance(value, str) and ("\x00" in value or _has_surrogate(value)):
        raise InvalidInput(f"{what} {value!r} holds a NUL character or a lone surrogate: use a name without them")
    return required(value, what)


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def optional(value: Any, what: str, max_bytes: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string or None, got {type(value).__name__}")
    value = clean_text(value)
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise InvalidInput(f"{what} is longer than {max_bytes} bytes")
    return value


def names(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    """One name or a sequence of them, each checked like :func:`required`; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [identifier(value, what)]
    if not isinstance(value, Sequence):
        raise InvalidInput(f"{what} must be a string or a list of strings, got {type(value).__name__}")
    if not value:  # a filter that matches nothing, or no filter? Neither guess is safe.
        raise InvalidInput(f"{what} is an empty list: name at least one, or pass None for all")
    return [identifier(v, what) for v in value]


def flag(value: Any, what: str) -> bool:
    """A yes/no option: True or False only (a string such as "false" would be truthy)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be True or False, got {value!r}")
    return value


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def similarity(value: Any, what: str) -> float | None:
    """A cosine similarity bound: a number from -1 to 1, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
        raise InvalidInput(f"{what} must be a number from -1 to 1, got {value!r}")
    return float(value)


def truncate_bytes(value: str, max_bytes: int) -> str:
    """`value` cut to at most `max_bytes` UTF-8 bytes, on a character boundary."""
    return value.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def clean_json(value: Any, where: str = "data", depth: int = 0) -> Any:
    """Clean every string (keys too) in a JSON-like value; refuse what JSON cannot hold."""
    if depth > JSON_DEPTH:
        raise InvalidInput(f"{where}: nested deeper than {JSON_DEPTH} levels")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where}: JSON object keys must be strings, got {key!r}")
            out[clean_text(key)] = clean_json(item, where, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [clean_json(item, where, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where}: {value!r} is not valid JSON; use null or a string")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise InvalidInput(f"{where}: {type(value).__name__} is not JSON-serialisable; convert it first")


def check_vector(vector: Any, dimension: int, model: str) -> list[float]:
    """Return `vector` as floats if it fits the embedding space, else raise a typed error.

    Values are checked as pgvector stores them (32-bit floats): 1e39 overflows and 1e-46
    vanishes, so both are caught here rather than by the server or as NaN similarities."""
    if isinstance(vector, (str, bytes, Mapping)) or not isinstance(vector, (Sequence, array)) \
            and not hasattr(vector, "tolist"):
        raise InvalidInput(f"an embedding must be a sequence of numbers, got {type(vector).__name__}")
    try:
        if any(isinstance(x, (bool, str, bytes)) for x in vector):
            raise TypeError("booleans and strings are not vector components")
        values = [float(x) for x in vector]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"an embedding must be a sequence of numbers: {exc}") from None
    if len(values) != dimension:
        raise EmbeddingMismatch(
            f"this schema stores {dimension}-dimensional vectors of model {model!r}; "
            f"got a vector of {len(values)} dimensions"
        )
    stored = array("f", values)
    if not all(math.isfinite(x) for x in values) or not all(math.isfinite(x) for x in stored):
        raise InvalidInput("an embedding must not contain NaN or infinite values, or values beyond ±3.4e38")
    if not any(stored):
        raise InvalidInput("an all-zero embedding has no direction; cosine distance is undefined for it")
    return values


MAX_LIMIT = 1000
"""Rows one call returns at most (`limit=`)."""


def page_limit(limit: Any) -> int:
    return whole_number(limit, "limit", 1, MAX_LIMIT)
