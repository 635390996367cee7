"""Stage `total` (Total): subtotal plus tax minus discount."""

from __future__ import annotations

from .._models import Money, TotalOutput
from .._stages import TotalContext, TotalStage


class Total(TotalStage):
    """Total, in the subtotal's currency."""

    def execute(self, ctx: TotalContext) -> TotalOutput:
        subtotal, tax, discount = ctx.subtotal.subtotal, ctx.tax.tax, ctx.discount.discount
        cents = subtotal.cents + tax.cents - discount.cents
        return TotalOutput(
            total=Money(cents=cents, currency=subtotal.currency),
            tax=tax,
            discount=discount,
            lines=ctx.subtotal.lines,
        )
