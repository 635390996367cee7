"""The YAML form (`*.wf.yaml`) → the same AST as the `.wf` parser, with positions in the YAML file.

Structure (workflows, stages, records) is YAML; the small pieces of the
language inside scalars — a field's type (`float (0 .. 1) = 0.5`), `retry`,
`poll`, `flow`, durations — are parsed by the `.wf` grammar itself. Each such
scalar is parsed from the file's text with everything else blanked out, so the
spans in diagnostics point at the right line and column of the YAML file.

```yaml
imports: [common.wf]
workflow:
  id: document_processor
  name: Document Processor
  enums: {Sentiment: [positive, negative, neutral]}
  types: {Keyword: {term: str, score: "float (0.0 .. 1.0)"}}
  input: {url: url, language: 'str = "en"'}
  stages:
    extract:
      name: Extract Text
      input: {url: url}            # or: from <stage> | none | TypeName
      output: {text: str}
      retry: 3 times, backoff exponential 1s x2 max 1m
    embed:
      async: true
      input: none
      needs: [extract]
      poll: every 1m, give up after 24h
      when: len(extract.text) > 100   # the `.wf` expression; quote it when it holds `: ` or `#`
    review: {input: none, needs: [extract, "embed?"]}   # `?`: embed may be skipped
    tag:
      map: extract.sentences         # or: {over: extract.sentences, at_most: 16,
      output: {tag: str}             #      on_item_failure: continue}
    enrich: {runs: enrich_customer, retry: 3 times}   # a child workflow (imported)
  flow: extract -> [embed] -> review
```

Queues, limits and schedules are read by `yaml_fleet`; signals, `sleep` and
`wait_for` by `yaml_waits`:

```yaml
  signals: {approve: {approved: bool, by: str}}
  stages:
    cool_off: {sleep: 1h}
    approval: {wait_for: "approve, timeout 2d, on timeout continue"}
```
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import Node, ScalarNode

from wfc.compiler import ast
from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.source import SourceFile, Span
from wfc.compiler.yaml_children import ChildReader
from wfc.compiler.yaml_nodes import DepthLimitedLoader, YamlProblem
from wfc.compiler.yaml_waits import WaitReader


class _Builder(WaitReader, ChildReader):
    """The whole file: types, stages and the workflow, on the node readers it inherits."""

    # -- types -----------------------------------------------------------------

    def record(self, node: Node, what: str) -> ast.RecordBody:
        fields = []
        for key, value in self.mapping(node, what):
            name = self.name(key, "a field name")
            spec = self.fragment(self.scalar(value, f"the type of `{key.value}`"), "field_spec")
            assert isinstance(spec, ast.Field)
            fields.append(
                ast.Field(
                    name=name,
                    type=spec.type,
                    constraints=spec.constraints,
                    default=spec.default,
                    span=self.span(key),
                )
            )
        return ast.RecordBody(fields=tuple(fields), span=self.span(node))

    def record_spec(self, node: Node, what: str) -> ast.RecordSpec:
        if isinstance(node, ScalarNode) and node.value not in ("", "~", "null"):
            return ast.TypeRef(name=self.name(node, what).value, span=self.span(node))
        return self.record(node, what)

    def types(self, node: Node) -> tuple[ast.TypeDecl, ...]:
        return tuple(
            ast.TypeDecl(
                name=self.name(key, "a type name"),
                body=self.record(value, f"type `{key.value}`"),
                span=self.span(key),
            )
            for key, value in self.mapping(node, "`types`")
        )

    def enums(self, node: Node) -> tuple[ast.EnumDecl, ...]:
        decls = []
        for key, value in self.mapping(node, "`enums`"):
            members = tuple(
                ast.EnumMember(name=self.name(m, "an enum member"), span=self.span(m))
                for m in self.sequence(value, f"enum `{key.value}`")
            )
            decls.append(
                ast.EnumDecl(
                    name=self.name(key, "an enum name"), members=members, span=self.span(key)
                )
            )
        return tuple(decls)

    # -- stages and workflow -----------------------------------------------------

    _STAGE_KEYS = {
        "name",
        "description",
        "async",
        "input",
        "output",
        "config",
        "needs",
        "retry",
        "timeout",
        "poll",
        "priority",
        "ai",
        "when",
        "map",
        "queue",
        "concurrency",
        "rate",
        "sleep",
        "wait_for",
        "runs",
    }

    def ai_preset(self, node: Node) -> ast.AiPreset:
        """`ai: gpt-4o-mini` or `ai: {model: gpt-4o-mini, temperature: 0.2, max_tokens: 500}`."""
        if isinstance(node, ScalarNode):
            return ast.AiPreset(model=self.string(node, "`ai`"), span=self.span(node))
        keys = self.keys(node, {"model", "temperature", "max_tokens"}, "`ai`")
        if "model" not in keys:
            raise self.fail(node, "`ai` needs a `model`", "add `model: gpt-4o-mini`")

        def number(key: str) -> ast.Literal_ | None:
            if key not in keys:
                return None
            scalar = self.scalar(keys[key][1], f"`{key}`")
            try:
                value: Any = float(scalar.value) if "." in scalar.value else int(scalar.value)
            except ValueError:
                value = scalar.value
            return ast.Literal_(value=value, span=self.span(scalar))

        return ast.AiPreset(
            model=self.string(keys["model"][1], "`model`"),
            temperature=number("temperature"),
            max_tokens=number("max_tokens"),
            span=self.span(node),
        )

    def map_spec(self, node: Node) -> ast.Map:
        """`map: split.pages` (the `.wf` text, options and all) or
        `map: {over: split.pages, at_most: 16, on_item_failure: continue}`."""
        if isinstance(node, ScalarNode):
            result = self.fragment(node, "map_spec")
            assert isinstance(result, ast.Map)
            return result
        keys = self.keys(node, {"over", "at_most", "on_item_failure"}, "`map`")
        if "over" not in keys:
            raise self.fail(
                node, "`map` needs `over`, the path of a list", "add `over: split.pages`"
            )
        over = self.fragment(self.scalar(keys["over"][1], "`over`"), "map_path")
        assert isinstance(over, ast.DottedName)
        at_most: tuple[ast.Literal_, ...] = ()
        if "at_most" in keys:
            scalar = self.scalar(keys["at_most"][1], "`at_most`")
            text = scalar.value
            value: Any = int(text) if text.lstrip("-").isdigit() else text
            at_most = (ast.Literal_(value=value, span=self.span(scalar)),)
        on_failure: tuple[ast.Name, ...] = ()
        if "on_item_failure" in keys:
            on_failure = (self.name(keys["on_item_failure"][1], "`on_item_failure`"),)
        return ast.Map(over=over, at_most=at_most, on_failure=on_failure, span=self.span(node))

    def stage_input(self, node: Node) -> ast.StageInput:
        if isinstance(node, ScalarNode):
            words = node.value.split()
            if words == ["none"]:
                return ast.InputNone(span=self.span(node))
            if len(words) == 2 and words[0] == "from":
                start = (
                    node.start_mark.index
                    + (1 if node.style in ("'", '"') else 0)
                    + node.value.index(words[1])
                )
                return ast.InputFrom(
                    stage=ast.Name(
                        value=words[1],
                        span=Span(file=self.file, start=start, end=start + len(words[1])),
                    ),
                    span=self.span(node),
                )
        return self.record_spec(node, "`input`")

    def stage(self, key: ScalarNode, node: Node) -> ast.Stage:
        keys = self.keys(node, self._STAGE_KEYS, f"stage `{key.value}`")

        def get(k: str) -> Node | None:
            return keys[k][1] if k in keys else None

        is_async = get("async")
        title = get("name")
        settings: dict[str, Any] = {}
        if (v := get("input")) is not None:
            settings["inputs"] = (self.stage_input(v),)
        for k in ("output", "config"):
            if (v := get(k)) is not None:
                settings[k + "s"] = (self.record_spec(v, f"`{k}`"),)
        if (v := get("needs")) is not None:
            needs = [self.need(n) for n in self.sequence(v, "`needs`")]
            settings["needs"] = tuple(name for name, _ in needs)
            settings["optional_needs"] = tuple(mark for _, mark in needs if mark is not None)
        if (v := get("when")) is not None:
            condition = self.fragment(self.scalar(v, "`when`"), "condition_spec")
            settings["conditions"] = (condition,)
        if (v := get("map")) is not None:
            settings["maps"] = (self.map_spec(v),)
        if (v := get("retry")) is not None:
            settings["retries"] = (self.fragment(self.scalar(v, "`retry`"), "retry_body"),)
        if (v := get("poll")) is not None:
            settings["polls"] = (self.fragment(self.scalar(v, "`poll`"), "poll_body"),)
        if (v := get("timeout")) is not None:
            settings["timeouts"] = (self.fragment(self.scalar(v, "`timeout`"), "duration_spec"),)
        if (v := get("priority")) is not None:
            scalar = self.scalar(v, "`priority`")
            value: Any = int(scalar.value) if scalar.value.lstrip("-").isdigit() else scalar.value
            settings["priorities"] = (ast.Literal_(value=value, span=self.span(scalar)),)
        if (v := get("description")) is not None:
            settings["descriptions"] = (self.string(v, "`description`"),)
        if (v := get("ai")) is not None:
            settings["ai_presets"] = (self.ai_preset(v),)
        settings.update(self.stage_limits(get))
        settings.update(self.stage_waits(get))
        settings.update(self.stage_child(get))
        async_flag = is_async is not None and self.boolean(is_async, "`async`")
        return ast.Stage(
            name=self.name(key, "a stage id"),
            is_async=async_flag,
            title=self.scalar(title, "`name`").value if title is not None else None,
            async_keyword=self.span(is_async) if async_flag and is_async is not None else None,
            span=self.span(key),
            **settings,
        )

    _WORKFLOW_KEYS = {
        "id",
        "name",
        "description",
        "types",
        "enums",
        "input",
        "output",
        "stages",
        "flow",
        "queue",
        "schedules",
        "signals",
    }

    def workflow(self, node: Node) -> ast.Workflow:
        keys = self.keys(node, self._WORKFLOW_KEYS, "`workflow`")
        if "id" not in keys:
            raise self.fail(node, "`workflow` needs an `id`", "add `id: my_workflow`")
        items: dict[str, Any] = {}
        if "name" in keys:
            items["names"] = (self.string(keys["name"][1], "`name`"),)
        if "description" in keys:
            items["descriptions"] = (self.string(keys["description"][1], "`description`"),)
        if "types" in keys:
            items["types"] = self.types(keys["types"][1])
        if "enums" in keys:
            items["enums"] = self.enums(keys["enums"][1])
        for k in ("input", "output"):
            if k in keys:
                items[k + "s"] = (self.record_spec(keys[k][1], f"workflow `{k}`"),)
        if "stages" in keys:
            items["stages"] = tuple(
                self.stage(k, v) for k, v in self.mapping(keys["stages"][1], "`stages`")
            )
        if "flow" in keys:
            flow = self.fragment(self.scalar(keys["flow"][1], "`flow`"), "flow_body")
            assert isinstance(flow, ast.Flow)
            items["flows"] = (flow,)
        if "queue" in keys:
            items["queues"] = (self.queue(keys["queue"][1]),)
        if "schedules" in keys:
            items["schedules"] = self.schedules(keys["schedules"][1])
        if "signals" in keys:
            items["signals"] = self.signals(keys["signals"][1])
        return ast.Workflow(
            id=self.name(keys["id"][1], "the workflow id"), span=self.span(node), **items
        )

    def module(self, root: Node) -> ast.Module:
        keys = self.keys(root, {"imports", "types", "enums", "workflow"}, "the file")
        imports = tuple(
            ast.Import(path=self.scalar(n, "an import").value, span=self.span(n))
            for n in (self.sequence(keys["imports"][1], "`imports`") if "imports" in keys else [])
        )
        return ast.Module(
            imports=imports,
            types=self.types(keys["types"][1]) if "types" in keys else (),
            enums=self.enums(keys["enums"][1]) if "enums" in keys else (),
            workflows=(self.workflow(keys["workflow"][1]),) if "workflow" in keys else (),
            span=self.span(root),
        )


def parse_yaml(file: SourceFile) -> ast.Module | Diagnostic:
    """The AST of a `.wf.yaml` file, or the diagnostic of its first problem."""
    try:
        root = yaml.compose(file.text, Loader=DepthLimitedLoader)
    except yaml.MarkedYAMLError as error:
        return _invalid_yaml(file, error)
    except yaml.YAMLError as error:
        return Diagnostic(code="WF120", message=f"invalid YAML: {error}", path=file.display_name)
    if root is None:
        return Diagnostic(
            code="WF114",
            message="the file is empty",
            span=Span(file=file, start=0, end=0),
            help="declare a workflow: `workflow: {id: name, stages: {…}, flow: …}`",
        )
    try:
        return _Builder(file).module(root)
    except YamlProblem as problem:
        return problem.diagnostic


def _invalid_yaml(file: SourceFile, error: yaml.MarkedYAMLError) -> Diagnostic:
    """WF120 at the place the YAML goes wrong. A quote or bracket left open is only found at
    the end of the file, so it is reported where it opens (YAML's context mark)."""
    mark = error.problem_mark or error.context_mark
    offset = mark.index if mark is not None else 0
    problem = str(error.problem or error.context)
    help = "check the indentation and quoting around this point"
    notes: tuple[str, ...] = ()
    unclosed = _UNCLOSED.get(str(error.context or "").split(" at ")[0])
    opened = error.context_mark
    if opened is not None and unclosed and (mark is None or mark.line > opened.line):
        if mark is not None:
            notes = (f"YAML: {problem}, on line {mark.line + 1}",)
        offset = opened.index
        problem, help = unclosed
    elif problem.endswith("but got '?'"):
        # YAML ends a plain scalar at `?` inside `[…]` and `{…}`: `[a, review?]` fails.
        help = (
            "inside `[…]` or `{…}`, quote a value that ends in `?`: "
            '`needs: [extract, "review?"]`, `{label: "str?"}`'
        )
    return Diagnostic(
        code="WF120",
        message=f"invalid YAML: {problem}",
        span=Span(file=file, start=offset, end=offset + 1),
        notes=notes,
        help=help,
    )


_UNCLOSED: dict[str, tuple[str, str]] = {
    "while scanning a quoted scalar": (
        "this quoted value is not closed",
        "close it with the same quote it opens with (`\"` or `'`) on its line",
    ),
    "while parsing a flow mapping": (
        "this `{` is not closed",
        "close the mapping with `}`, e.g. `a: {output: {x: int}}`",
    ),
    "while parsing a flow sequence": (
        "this `[` is not closed",
        "close the list with `]`, e.g. `needs: [extract, review]`",
    ),
}
"""YAML's context for a quote or bracket left open → the message and help of WF120 there."""
