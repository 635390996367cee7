"""Stage `subtotal` (Subtotal): sums line items in integer cents."""

from __future__ import annotations

from .._models import Money, SubtotalOutput
from .._stages import SubtotalContext, SubtotalStage


class Subtotal(SubtotalStage):
    """Subtotal; every line must be in one currency."""

    def execute(self, ctx: SubtotalContext) -> SubtotalOutput:
        currencies = {item.unit_price.currency for item in ctx.input.items}
        if len(currencies) != 1:
            raise ValueError(f"an invoice has one currency, got {sorted(currencies)}")
        cents = sum(item.quantity * item.unit_price.cents for item in ctx.input.items)
        return SubtotalOutput(
            subtotal=Money(cents=cents, currency=currencies.pop()),
            lines=len(ctx.input.items),
            country=ctx.input.customer.country.upper(),
            coupon=ctx.input.coupon,
        )
