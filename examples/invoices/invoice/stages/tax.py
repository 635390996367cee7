"""Stage `tax` (Tax): the customer's country rate on the subtotal, rounded half up."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .._models import Money, TaxOutput
from .._stages import TaxContext, TaxStage


def percent_of(cents: int, percent: float) -> int:
    """`percent`% of `cents`, rounded half up to a whole cent."""
    exact = Decimal(cents) * Decimal(str(percent)) / Decimal(100)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class Tax(TaxStage):
    """Tax by country; countries without a configured rate pay none."""

    def execute(self, ctx: TaxContext) -> TaxOutput:
        subtotal = ctx.subtotal.subtotal
        rate = ctx.config.rates.get(ctx.subtotal.country, 0.0)
        tax = Money(cents=percent_of(subtotal.cents, rate), currency=subtotal.currency)
        return TaxOutput(tax=tax, rate_percent=rate)
