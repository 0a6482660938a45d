"""The host application's own models: its own DeclarativeBase, its tables in `public`."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class AppBase(DeclarativeBase):
    pass


class Customer(AppBase):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    tenant: Mapped[str]  # the copilotz schema that holds this customer's knowledge
