"""``EXPLAIN`` for any SQLAlchemy statement (SQLAlchemy has no construct for it)."""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable


class Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: ClauseElement, analyze: bool = False) -> None:
        self.statement = statement
        self.analyze = analyze


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler, **kw) -> str:
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if element.analyze else "EXPLAIN "
    return prefix + compiler.process(element.statement, **kw)


def explain(statement: ClauseElement, analyze: bool = False) -> Explain:
    return Explain(statement, analyze)
