"""The YAML form of queues, fleet limits and schedules → the same AST as the `.wf` text.

```yaml
workflow:
  queue: gpu                                  # the workflow's queue
  schedules:
    nightly:
      cron: "0 6 * * *"
      timezone: Europe/Paris                  # `in "Europe/Paris"` in `.wf`; UTC without it
      input: {document: daily report, language: fr}
      catch_up: latest                        # skip | latest | all
      overlap: skip                           # skip | allow
    hourly: "0 * * * *"                       # a schedule with nothing but its cron
  stages:
    call:
      queue: gpu
      concurrency: 2 per input.customer_id    # or {max: 2, per: input.customer_id}
      rate: {max: 50, per: minute, shared: openai}   # or: 50 per minute
```

A schedule's `input` is plain YAML data; an enum member is written as its name,
a string, which the checker reads as the member. The limits take the `.wf`
text or a mapping of their parts, as `map` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from wfc.compiler import ast
from wfc.compiler.yaml_nodes import NodeReader


class FleetReader(NodeReader):
    """Readers for `queue`, `concurrency`, `rate` and `schedules`."""

    def stage_limits(self, get: Callable[[str], Node | None]) -> dict[str, Any]:
        """A stage's `queue`, `concurrency` and `rate`, as keyword arguments of `ast.Stage`."""
        settings: dict[str, Any] = {}
        if (v := get("queue")) is not None:
            settings["queues"] = (self.queue(v),)
        if (v := get("concurrency")) is not None:
            settings["concurrencies"] = (self.concurrency(v),)
        if (v := get("rate")) is not None:
            settings["rates"] = (self.rate(v),)
        return settings

    def queue(self, node: Node) -> ast.Literal_:
        """`queue: gpu`."""
        return self.string(node, "`queue`")

    def number(self, node: Node, what: str) -> ast.Literal_:
        """A count as written; what is not a number stays text, for the checker to refuse."""
        scalar = self.scalar(node, what)
        text = scalar.value
        value: Any
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            value = text
        return ast.Literal_(value=value, span=self.span(scalar))

    def concurrency(self, node: Node) -> ast.Concurrency:
        """`concurrency: 2 per input.customer_id` or `{max: 2, per: input.customer_id}`."""
        if isinstance(node, ScalarNode):
            result = self.fragment(node, "concurrency_spec")
            assert isinstance(result, ast.Concurrency)
            return result
        keys = self.keys(node, {"max", "per"}, "`concurrency`")
        if "max" not in keys:
            raise self.fail(node, "`concurrency` needs `max`, how many run at once", "add `max: 2`")
        per = None
        if "per" in keys:
            path = self.fragment(self.scalar(keys["per"][1], "`per`"), "limit_path_spec")
            assert isinstance(path, ast.DottedName)
            per = path
        return ast.Concurrency(
            max=self.number(keys["max"][1], "`max`"), per=per, span=self.span(node)
        )

    def rate(self, node: Node) -> ast.Rate:
        """`rate: 50 per minute` or `{max: 50, per: minute, shared: openai}`."""
        if isinstance(node, ScalarNode):
            result = self.fragment(node, "rate_spec")
            assert isinstance(result, ast.Rate)
            return result
        keys = self.keys(node, {"max", "per", "shared"}, "`rate`")
        for key, example in (("max", "max: 50"), ("per", "per: minute")):
            if key not in keys:
                raise self.fail(node, f"`rate` needs `{key}`", f"add `{example}`")
        shared = self.string(keys["shared"][1], "`shared`") if "shared" in keys else None
        return ast.Rate(
            max=self.number(keys["max"][1], "`max`"),
            unit=self.name(keys["per"][1], "a unit of time"),
            shared=shared,
            span=self.span(node),
        )

    # -- schedules ----------------------------------------------------------------

    def schedules(self, node: Node) -> tuple[ast.Schedule, ...]:
        """`schedules: {name: "cron"}` or `{name: {cron, timezone, input, catch_up, overlap}}`."""
        return tuple(self.schedule(key, value) for key, value in self.mapping(node, "`schedules`"))

    def schedule(self, key: ScalarNode, node: Node) -> ast.Schedule:
        """One schedule, under its name."""
        name = self.name(key, "a schedule name")
        if isinstance(node, ScalarNode):
            return ast.Schedule(
                name=name, cron=self.string(node, "a cron expression"), span=self.span(key)
            )
        what = f"schedule `{key.value}`"
        keys = self.keys(node, {"cron", "timezone", "input", "catch_up", "overlap"}, what)
        if "cron" not in keys:
            raise self.fail(node, f"{what} needs a `cron`", 'add `cron: "0 6 * * *"`')
        inputs: tuple[ast.ObjectValue, ...] = ()
        if "input" in keys:
            data = self.value(keys["input"][1])
            if not isinstance(data, ast.ObjectValue):
                raise self.fail(keys["input"][1], "a schedule's `input` must be a mapping")
            inputs = (data,)
        return ast.Schedule(
            name=name,
            cron=self.string(keys["cron"][1], "`cron`"),
            timezone=self.string(keys["timezone"][1], "`timezone`") if "timezone" in keys else None,
            inputs=inputs,
            catch_ups=(self.name(keys["catch_up"][1], "`catch_up`"),) if "catch_up" in keys else (),
            overlaps=(self.name(keys["overlap"][1], "`overlap`"),) if "overlap" in keys else (),
            span=self.span(key),
        )

    def value(self, node: Node) -> ast.Value:
        """Plain YAML data as a value of the language: mappings, lists and scalars."""
        if isinstance(node, MappingNode):
            entries = []
            for key, item in node.value:
                if not isinstance(key, ScalarNode):
                    raise self.fail(key, "keys of `input` must be plain names")
                entries.append((key.value, self.value(item)))
            return ast.ObjectValue(entries=tuple(entries), span=self.span(node))
        if isinstance(node, SequenceNode):
            items = tuple(self.value(item) for item in node.value)
            return ast.ListValue(items=items, span=self.span(node))
        assert isinstance(node, ScalarNode)
        return ast.Literal_(value=_scalar(node), span=self.span(node))


def _scalar(node: ScalarNode) -> ast.JsonLiteral:
    """A scalar as YAML reads it (`3`, `true`, `null`, text); a date or a time stays as written,
    which is how JSON carries it."""
    try:
        value: object = SafeConstructor().construct_object(node)
    except ConstructorError:
        return str(node.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(node.value)
