"""Stage `discount` (Discount): a coupon's percentage off the subtotal."""

from __future__ import annotations

from .._models import DiscountOutput, Money
from .._stages import DiscountContext, DiscountStage
from .tax import percent_of


class Discount(DiscountStage):
    """Discount; an unknown coupon is logged and gives nothing off."""

    def execute(self, ctx: DiscountContext) -> DiscountOutput:
        subtotal = ctx.subtotal.subtotal
        coupon = ctx.subtotal.coupon
        percent = ctx.config.coupons.get(coupon, 0) if coupon else 0
        if coupon and not percent:
            ctx.log("WARN", "unknown coupon", coupon=coupon)
        cents = percent_of(subtotal.cents, percent)
        return DiscountOutput(discount=Money(cents=cents, currency=subtotal.currency))
