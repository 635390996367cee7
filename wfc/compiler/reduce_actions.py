"""AST nodes built as the LALR parser reduces each rule, with no parse tree in between.

Lark's default is to build a `Tree` for every rule and, with `propagate_positions`,
to give each a `Meta` of a dozen attributes, each read through `getattr` with a
default; `AstBuilder` then walked that tree a second time. For a 5,000-stage file
(265,000 reductions) the positions alone took 0.7 s of CPU, nearly half the parse,
and the second walk 0.4 s. Here each reduction works out the two offsets a span
needs, keeps the children lark's tree builder would keep, and calls the builder's
callback at once.

Positions follow lark's rules, so every span is what it was: a node starts where
its first child with a position starts and ends where its last one ends; a rule
that passes its one child on (`?record_spec`, `"(" condition ")"`) keeps the
child's own span but widens the extent its parent sees (lark's "container"
positions: the parentheses belong to the comparison they are in, not to the
condition inside them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any

from lark import Lark
from lark.grammar import Rule, Terminal

from wfc.compiler.lalr_loop import Fallback, LalrLoop, lalr_loop


class Reduced:
    """What a rule reduced to, on the parser's stack, and the text it covers. It is also
    the `meta` a callback gets: `empty`, `start_pos` and `end_pos`, as in lark's `Meta`.

    `start_pos`/`end_pos` are the node's own extent; `outer_start`/`outer_end` that of
    the outermost rule that passed the node on unchanged, which is what a parent's
    extent is made of. `empty` when no child had a position (`docs` with no comment).
    """

    __slots__ = ("empty", "end_pos", "outer_end", "outer_start", "start_pos", "value")
    empty: bool
    start_pos: int
    end_pos: int
    outer_start: int
    outer_end: int

    def __init__(self, children: list[Any]) -> None:
        self.value: Any = None
        # The first and last child with a position (205,000 of the 265,000 reductions of
        # 5,000 stages make a node: no helper function called here)
        for child in children:
            if type(child) is not Reduced:  # a Token
                start: int = child.start_pos
                break
            if not child.empty:
                start = child.outer_start
                break
        else:
            self.empty = True
            self.start_pos = self.outer_start = self.end_pos = self.outer_end = 0
            return
        for child in reversed(children):
            if type(child) is not Reduced:
                end: int = child.end_pos
                break
            if not child.empty:
                end = child.outer_end
                break
        self.empty = False
        self.start_pos = self.outer_start = start
        self.end_pos = self.outer_end = end


@dataclass(frozen=True, slots=True)
class _RulePlan:
    """What a reduction of one rule does, from the grammar: the children lark's tree builder
    keeps (index, and whether it is a helper rule's list to splice in: `stage_item*` is a
    left-recursive helper rule, `__stage_star_10`), whether a single kept child is passed
    on as it is (a `?rule`), and the builder's callback (None for a helper rule)."""

    kept: tuple[tuple[int, bool], ...]
    passes_single: bool
    callback: Callable[[Any, Reduced, list[Any]], Any] | None
    size: int


@cache
def _plans(parser: Lark, builder_class: type) -> tuple[tuple[Rule, _RulePlan], ...]:
    """The plan of every rule of the parse table, keyed by the table's own rule objects
    (a dict lookup of the same object is an identity check, not lark's `Rule.__eq__`)."""
    plans = []
    for rule in _table_rules(parser):
        kept = tuple(
            (index, not symbol.is_term and symbol.name.startswith("_"))
            for index, symbol in enumerate(rule.expansion)
            if rule.options.keep_all_tokens
            or not (isinstance(symbol, Terminal) and symbol.filter_out)
        )
        passes_single = bool(rule.options.expand1 and not rule.alias)
        callback = None
        if not rule.origin.name.startswith("_"):
            name = rule.alias or rule.options.template_source or rule.origin.name
            callback = _callback(builder_class, str(name))
            if callback is None and not (passes_single and len(kept) == 1 and not kept[0][1]):
                raise LookupError(f"{builder_class.__name__} has no callback for `{name}`")
        plans.append((rule, _RulePlan(kept, passes_single, callback, len(rule.expansion))))
    return tuple(plans)


def _table_rules(parser: Lark) -> list[Rule]:
    """The rule objects the LALR table reduces by (after loading from the cache, the same
    objects as `parser.rules`; taken from the table so that it does not matter)."""
    table = parser.parser.parser.parser.parse_table
    found: dict[int, Rule] = {}
    for actions in table.states.values():
        for _action, target in actions.values():
            if isinstance(target, Rule):
                found.setdefault(id(target), target)
    return list(found.values())


def _callback(builder_class: type, name: str) -> Callable[..., Any] | None:
    for klass in builder_class.__mro__:
        found = vars(klass).get(name)
        if found is not None:
            return found  # type: ignore[no-any-return]
    return None


def _action(builder: Any, plan: _RulePlan) -> Callable[[list[Any]], Any]:
    """The reduction of one rule. The common shapes get a function of their own (265,000
    reductions for 5,000 stages): a `?rule` of one symbol passes its child on untouched
    (`_pass_on` changes nothing when the child is all there is), and a rule that keeps
    its children as they are neither picks nor splices them."""
    kept, passes_single, callback = plan.kept, plan.passes_single, plan.callback
    if any(splice for _, splice in kept):
        return _general_action(builder, plan)
    indices = tuple(index for index, _ in kept)
    if passes_single and len(indices) == 1:
        if plan.size == 1:
            return itemgetter(0)
        only = indices[0]
        return lambda children: _pass_on(children[only], children)
    if callback is None:
        return _general_action(builder, plan)
    whole = indices == tuple(range(plan.size))

    def reduce(children: list[Any]) -> Any:
        node = Reduced(children)
        items = children if whole else [children[index] for index in indices]
        values = [item.value if type(item) is Reduced else item for item in items]
        node.value = callback(builder, node, values)
        return node

    return reduce


def _general_action(builder: Any, plan: _RulePlan) -> Callable[[list[Any]], Any]:
    kept, passes_single, callback = plan.kept, plan.passes_single, plan.callback

    def reduce(children: list[Any]) -> Any:
        items: list[Any] = []
        for index, splice in kept:
            if not splice:
                items.append(children[index])
            elif items:
                items += children[index].value
            else:  # left recursion: the helper's own list grows, so `a -> b -> …` stays linear
                items = children[index].value
        if passes_single and len(items) == 1:
            return _pass_on(items[0], children)
        node = Reduced(children)
        if callback is None:  # a helper rule: its items are spliced into its parent's
            node.value = items
        else:
            values = [item.value if type(item) is Reduced else item for item in items]
            node.value = callback(builder, node, values)
        return node

    return reduce


def _pass_on(item: Any, children: list[Any]) -> Any:
    """A `?rule` with one child passes it on: its own span stays, and the extent its parent
    sees becomes this rule's (a token passed on keeps its own, as in lark)."""
    if type(item) is Reduced:
        extent = Reduced(children)
        if not extent.empty:
            if item.empty:
                item.start_pos, item.end_pos = extent.start_pos, extent.end_pos
                item.empty = False
            item.outer_start, item.outer_end = extent.start_pos, extent.end_pos
    return item


def parse_to_ast(parser: Lark, text: str, start: str, builder: Any) -> Any:
    """Parse `text` as rule `start`, calling `builder`'s callbacks (`rule(self, meta,
    children)`) as each rule is reduced; returns what the start rule's callback built.
    Raises lark's `UnexpectedInput` errors, as `Lark.parse` does.

    The text is run through `lalr_loop` first, which gives the same tokens and the same
    reductions as lark in a third of the time; at a syntax error it stops and lark parses
    the text again from the start, to raise its own error. The callbacks then run twice
    over the text before the error: the builder keeps nothing between them.
    """
    plans = _plans(parser, builder.__class__)
    actions = {rule: _action(builder, plan) for rule, plan in plans}
    loop = _loop(parser)
    if loop is not None:
        by_id = {id(rule): action for rule, action in actions.items()}
        try:
            result = loop.parse(text, start, [by_id[id(rule)] for rule in loop.rules])
        except Fallback:
            pass
        else:
            return result.value if type(result) is Reduced else result
    return _lark_parse(parser, text, start, actions)


@cache
def _loop(parser: Lark) -> LalrLoop | None:
    return lalr_loop(parser)


def _lark_parse(parser: Lark, text: str, start: str, actions: dict[Rule, Any]) -> Any:
    """Lark's own parse, with the callbacks bound to this builder for this parse only
    (lark keeps one table per parser; an interactive parse has a configuration of its own),
    so parses of different files never share one."""
    interactive = parser.parse_interactive(text, start=start)
    interactive.parser_state.parse_conf.callbacks = actions  # type: ignore[assignment]
    result = interactive.resume_parse()  # type: ignore[no-untyped-call]
    return result.value if type(result) is Reduced else result
