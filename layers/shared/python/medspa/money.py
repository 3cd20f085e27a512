"""Money as integer minor units plus an ISO 4217 currency.

Fees are charged to real cards, so a float never touches an amount: every amount is an ``int`` of
the currency's minor unit (US cents, Hong Kong cents) and arithmetic across currencies is an error
rather than a silent conversion.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

# Currencies whose minor unit is not 1/100 (ISO 4217); the packs use USD and HKD.
_MINOR_UNIT_EXPONENT = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class Money(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, strict=True)

    amount: Annotated[int, Field(description="Integer minor units, e.g. 5000 = $50.00")]
    currency: Currency

    @classmethod
    def of(cls, major: int | str, currency: str) -> "Money":
        """Build from a major-unit literal written by people ("50", "12.50", 500) without floats."""
        exponent = _MINOR_UNIT_EXPONENT.get(currency, 2)
        whole, _, fraction = str(major).partition(".")
        if len(fraction) > exponent:
            raise ValueError(f"{major} has more decimals than {currency} allows")
        minor = int(whole) * 10**exponent + (int(fraction.ljust(exponent, "0")) if exponent else 0)
        return cls(amount=minor, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(amount=0, currency=currency)

    def _same(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def min(self, other: "Money") -> "Money":
        self._same(other)
        return self if self.amount <= other.amount else other

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        exponent = _MINOR_UNIT_EXPONENT.get(self.currency, 2)
        sign = "-" if self.amount < 0 else ""
        whole, fraction = divmod(abs(self.amount), 10**exponent) if exponent else (abs(self.amount), 0)
        body = f"{whole:,}" + (f".{fraction:0{exponent}d}" if exponent else "")
        return f"{sign}{self.currency} {body}"
