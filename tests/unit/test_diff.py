"""`diff_plans`: each rule, both ways, on real `.wf` sources; `safe_for` by where a run stands.

Every case is an old and a new version of a small workflow, compiled as
`wfc diff` compiles them, and the exact set of (code, verdict) the diff must
find: a rule's compatible variant and its breaking one sit next to each
other. docs/upgrades.md explains each verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.diff import Change, PlanDiff, Verdict, diff_plans, load_side
from wfc.plan import ItemFailure, MapSpec, Plan, StageKind

SHOP = """\
workflow shop {
  enum Kind { book, toy }
  type Item { sku: str, price: float (>= 0) }
  input  { order: str (len >= 1), items: list[Item], note: str? }
  output { total: float, kind: Kind }

  stage fetch {
    input { order: str }
    output { items: list[Item], kind: Kind, count: int (>= 0) }
    config { retries: int = 3 }
    retry 3 times
  }
  stage price {
    map fetch.items, at most 4 at once
    output { cost: float (>= 0) }
  }
  stage check {
    input none
    needs fetch
    output { ok: bool }
    when fetch.count > 0
  }
  stage total {
    input none
    needs fetch, price, check?
    output { total: float, kind: Kind }
  }
  flow fetch -> [price, check] -> total
}
"""

# Four stages that read nothing of each other, so the flow can be reordered freely.
ABCD = """\
workflow abcd {
  input  { v: int }
  output { v: int }
  stage a { input { v: int } output { v: int } }
  stage b { input none output { v: int } }
  stage c { input none output { v: int } }
  stage d { input none output { v: int } }
  flow a -> b -> c -> d
}
"""

C, B, BIS = Verdict.COMPATIBLE, Verdict.BREAKING, Verdict.BREAKING_IF_STARTED


def edit(text: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def shop(*replacements: tuple[str, str]) -> str:
    return edit(SHOP, *replacements)


def abcd(flow: str) -> str:
    return edit(ABCD, ("flow a -> b -> c -> d", f"flow {flow}"))


def diff_of(tmp_path: Path, old: str, new: str) -> PlanDiff:
    (tmp_path / "old.wf").write_text(old)
    (tmp_path / "new.wf").write_text(new)
    before, after = load_side(tmp_path / "old.wf"), load_side(tmp_path / "new.wf")
    return diff_plans(
        before.plan, after.plan, old_source=before.locations, new_source=after.locations
    )


def found(diff: PlanDiff) -> set[tuple[str, Verdict]]:
    return {(change.code, change.verdict) for change in diff.changes}


def the(diff: PlanDiff, code: str) -> Change:
    matches = [change for change in diff.changes if change.code == code]
    assert len(matches) == 1, [c.code for c in diff.changes]
    return matches[0]


CHECK_STAGE = """\
  stage check {
    input none
    needs fetch
    output { ok: bool }
    when fetch.count > 0
  }
"""
WITHOUT_CHECK = shop(
    (CHECK_STAGE, ""),
    ("[price, check]", "price"),
    ("needs fetch, price, check?", "needs fetch, price"),
)

SCHEDULE = """workflow shop {
  schedule nightly "0 6 * * *" in "Europe/Paris" { input { order: "restock", items: [] } }"""

FIELD = ("count: int (>= 0) }", 'count: int (>= 0), mode: str = "fast" }')

CASES: list[tuple[str, str, str, set[tuple[str, Verdict]]]] = [
    # -- settings: how a stage runs, not what it reads or writes
    (
        "stage title",
        SHOP,
        shop(("stage fetch {", 'stage fetch "Fetch Order" {')),
        {("stage-name-changed", C)},
    ),
    (
        "stage description",
        SHOP,
        shop(("retry 3 times", 'retry 3 times\n    description "Reads it"')),
        {("stage-description-changed", C)},
    ),
    (
        "workflow name",
        SHOP,
        shop(("workflow shop {", 'workflow shop {\n  name "The Shop"')),
        {("workflow-name-changed", C)},
    ),
    ("retry", SHOP, shop(("retry 3 times", "retry 5 times")), {("stage-retry-changed", C)}),
    (
        "timeout",
        SHOP,
        shop(("retry 3 times", "retry 3 times\n    timeout 2m")),
        {("stage-timeout-changed", C)},
    ),
    (
        "priority",
        SHOP,
        shop(("retry 3 times", "retry 3 times\n    priority 9")),
        {("stage-priority-changed", C)},
    ),
    (
        "the order of needs",
        SHOP,
        shop(("needs fetch, price, check?", "needs price, fetch, check?")),
        {("annotations-changed", C)},
    ),
    (
        "a doc comment only",
        SHOP,
        shop(("  type Item", "  ## One line of the order.\n  type Item")),
        {("annotations-changed", C)},
    ),
    (
        "workflow id",
        SHOP,
        shop(("workflow shop {", "workflow store {")),
        {("workflow-id-changed", B), ("workflow-name-changed", C)},
    ),
    # -- queues, fleet limits and schedules: where and when jobs and runs start
    (
        "a stage's queue",
        SHOP,
        shop(("retry 3 times", 'retry 3 times\n    queue "gpu"')),
        {("stage-queue-changed", C)},
    ),
    (
        "the workflow's queue (stages that name none follow it)",
        SHOP,
        shop(("workflow shop {", 'workflow shop {\n  queue "gpu"')),
        {("workflow-queue-changed", C)},
    ),
    (
        "concurrency",
        SHOP,
        shop(("retry 3 times", "retry 3 times\n    concurrency 2 per input.order")),
        {("stage-concurrency-changed", C)},
    ),
    (
        "rate",
        SHOP,
        shop(("retry 3 times", 'retry 3 times\n    rate 50 per minute shared "erp"')),
        {("stage-rate-changed", C)},
    ),
    (
        "schedule added",
        SHOP,
        shop(("workflow shop {", SCHEDULE)),
        {("schedule-added", C)},
    ),
    (
        "schedule changed",
        shop(("workflow shop {", SCHEDULE)),
        shop(("workflow shop {", SCHEDULE.replace('"0 6 * * *"', '"0 7 * * *"'))),
        {("schedule-changed", C)},
    ),
    (
        "schedule removed",
        shop(("workflow shop {", SCHEDULE)),
        SHOP,
        {("schedule-removed", C)},
    ),
    # -- the workflow input: what every run in flight stored
    (
        "input: optional field with a default",
        SHOP,
        shop(("note: str? }", 'note: str?, channel: str = "web" }')),
        {("input-field-added-optional", C)},
    ),
    (
        "input: optional field",
        SHOP,
        shop(("note: str? }", "note: str?, channel: str? }")),
        {("input-field-added-optional", C)},
    ),
    (
        "input: required field",
        SHOP,
        shop(("note: str? }", "note: str?, channel: str }")),
        {("input-field-added-required", B)},
    ),
    ("input: field removed", SHOP, shop((", note: str? }", " }")), {("input-field-removed", C)}),
    (
        "input: type widened",
        SHOP,
        shop(("order: str (len >= 1), items", "order: str, items")),
        {("input-type-widened", C)},
    ),
    (
        "input: type narrowed",
        SHOP,
        shop(("order: str (len >= 1), items", "order: str (len >= 2), items")),
        {("input-type-narrowed", B)},
    ),
    (
        "input: a nested type narrowed",
        SHOP,
        shop(("price: float (>= 0) }", "price: float (> 0) }")),
        {
            ("input-type-narrowed", B),
            ("stage-output-type-narrowed", BIS),
            ("stage-input-type-narrowed", BIS),
        },
    ),
    (
        "input: optional made required",
        SHOP,
        shop(("note: str? }", "note: str }")),
        {("input-type-narrowed", B)},
    ),
    (
        "input: defaulted made required",
        shop(("note: str? }", 'note: str = "-" }')),
        shop(("note: str? }", "note: str }")),
        {("input-default-changed", C)},
    ),
    (
        "input: default changed",
        shop(("note: str? }", 'note: str = "a" }')),
        shop(("note: str? }", 'note: str = "b" }')),
        {("input-default-changed", C)},
    ),
    # -- a stage's output: stored by runs that started it, read by later stages
    (
        "output: type widened",
        SHOP,
        shop(("count: int (>= 0) }", "count: float (>= 0) }")),
        {("stage-output-type-widened", C)},
    ),
    (
        "output: type narrowed",
        SHOP,
        shop(("count: int (>= 0) }", "count: int (>= 1) }")),
        {("stage-output-type-narrowed", BIS)},
    ),
    (
        "output: optional field",
        SHOP,
        shop(("count: int (>= 0) }", "count: int (>= 0), note: str? }")),
        {("stage-output-field-added-optional", C)},
    ),
    (
        "output: required field",
        SHOP,
        shop(("count: int (>= 0) }", "count: int (>= 0), note: str }")),
        {("stage-output-field-added-required", BIS)},
    ),
    (
        "output: field removed",
        shop(("count: int (>= 0) }", "count: int (>= 0), weight: float }")),
        SHOP,
        {("stage-output-field-removed", C)},
    ),
    (
        "output: enum gains a member",
        SHOP,
        shop(("enum Kind { book, toy }", "enum Kind { book, toy, game }")),
        {("stage-output-type-widened", C), ("output-type-widened", B)},
    ),
    (
        "output: enum loses a member",
        shop(("enum Kind { book, toy }", "enum Kind { book, toy, game }")),
        SHOP,
        {("stage-output-type-narrowed", BIS), ("output-type-narrowed", BIS)},
    ),
    # -- a stage's input: consumed by runs that started it
    (
        "stage input: field added",
        SHOP,
        shop(("input { order: str }", "input { order: str, note: str? }")),
        {("stage-input-field-added-optional", BIS)},
    ),
    (
        "stage input: field removed",
        shop(("input { order: str }", "input { order: str, note: str? }")),
        SHOP,
        {("stage-input-field-removed", BIS)},
    ),
    # -- config: stored with every run when it was created
    (
        "config: default changed",
        SHOP,
        shop(("retries: int = 3", "retries: int = 5")),
        {("stage-config-default-changed", C)},
    ),
    (
        "config: field with a default",
        SHOP,
        shop(("retries: int = 3", "retries: int = 3, fast: bool = false")),
        {("stage-config-field-added-optional", C)},
    ),
    (
        "config: required field",
        SHOP,
        shop(("retries: int = 3", "retries: int = 3, key: str")),
        {("stage-config-field-added-required", B)},
    ),
    (
        "config: field removed",
        shop(("retries: int = 3", "retries: int = 3, fast: bool = false")),
        SHOP,
        {("stage-config-field-removed", B)},
    ),
    (
        "config: type widened",
        SHOP,
        shop(("retries: int = 3", "retries: float = 3")),
        {("stage-config-type-widened", C)},
    ),
    (
        "config: type narrowed",
        SHOP,
        shop(("retries: int = 3", "retries: int (<= 5) = 3")),
        {("stage-config-type-narrowed", B)},
    ),
    # -- the workflow output: made from the last group, read by whoever created the run
    (
        "workflow output: narrowed",
        SHOP,
        shop(("output { total: float, kind", "output { total: float (>= 0), kind")),
        {("output-type-narrowed", BIS)},
    ),
    (
        "workflow output: widened",
        SHOP,
        shop(("output { total: float, kind: Kind }\n\n", "output { total: float, kind: str }\n\n")),
        {("output-type-widened", B)},
    ),
    (
        "workflow output: optional field",
        SHOP,
        shop(
            (
                "output { total: float, kind: Kind }\n\n",
                "output { total: float, kind: Kind, note: str? }\n\n",
            )
        ),
        {("output-field-added-optional", C)},
    ),
    (
        "workflow output: required field removed",
        SHOP,
        shop(("output { total: float, kind: Kind }\n\n", "output { total: float }\n\n")),
        {("output-field-removed", B)},
    ),
    (
        "workflow output: optional field removed",
        shop(
            (
                "output { total: float, kind: Kind }\n\n",
                "output { total: float, kind: Kind, note: str? }\n\n",
            )
        ),
        SHOP,
        {("output-field-removed", C)},
    ),
    # -- stages added and removed
    (
        "stage added after everything",
        SHOP,
        shop(
            (
                "flow fetch -> [price, check] -> total",
                "flow fetch -> [price, check] -> total -> final",
            ),
            (
                "  flow fetch",
                "  stage final { input none needs total output { total: float, kind: Kind } }\n  flow fetch",
            ),
        ),
        {("stage-added", C)},
    ),
    (
        "stage added into a group",
        SHOP,
        shop(
            ("[price, check]", "[price, check, audit]"),
            (
                "  flow fetch",
                "  stage audit { input none needs fetch output { ok: bool } }\n  flow fetch",
            ),
        ),
        {("stage-added", BIS)},
    ),
    (
        "stage added with required config",
        SHOP,
        shop(
            ("[price, check]", "[price, check, audit]"),
            (
                "  flow fetch",
                "  stage audit { input none needs fetch output { ok: bool } config { key: str } }\n  flow fetch",
            ),
        ),
        {("stage-added", BIS), ("stage-added-config-required", B)},
    ),
    ("stage removed", SHOP, WITHOUT_CHECK, {("stage-removed", BIS), ("stage-needs-removed", C)}),
    (
        "stage renamed",
        SHOP,
        shop(
            ("[price, check]", "[price, verify]"),
            ("stage check {", "stage verify {"),
            ("check?", "verify?"),
        ),
        {
            ("stage-removed", BIS),
            ("stage-added", BIS),
            ("stage-needs-removed", C),
            ("stage-needs-added", BIS),
        },
    ),
    # -- needs
    (
        "need added",
        shop(("needs fetch, price, check?", "needs price, check?")),
        SHOP,
        {("stage-needs-added", BIS)},
    ),
    (
        "need removed",
        SHOP,
        shop(("needs fetch, price, check?", "needs price, check?")),
        {("stage-needs-removed", C)},
    ),
    # -- when
    (
        "when changed",
        SHOP,
        shop(("when fetch.count > 0", "when fetch.count > 1")),
        {("stage-when-changed", BIS)},
    ),
    ("when removed", SHOP, shop(("    when fetch.count > 0\n", "")), {("stage-when-removed", BIS)}),
    (
        "when added",
        SHOP,
        shop(
            ("at most 4 at once\n", "at most 4 at once\n    when fetch.count > 1\n"),
            ("needs fetch, price, check?", "needs fetch, price?, check?"),
        ),
        {("stage-when-added", BIS), ("stage-need-made-optional", C)},
    ),
    (
        "when reads a new output field with a default",
        SHOP,
        shop(FIELD, ("when fetch.count > 0", 'when fetch.mode == "fast"')),
        {
            ("stage-output-field-added-optional", C),
            ("stage-when-changed", BIS),
            ("when-reads-new-field", BIS),
        },
    ),
    (
        "when reads a new input field with a default",
        SHOP,
        shop(
            ("note: str? }", 'note: str?, channel: str = "web" }'),
            ("when fetch.count > 0", 'when input.channel == "web"'),
        ),
        {
            ("input-field-added-optional", C),
            ("stage-when-changed", BIS),
            ("when-reads-new-field", B),
        },
    ),
    (
        "when reads a new optional input field",
        SHOP,
        shop(
            ("note: str? }", "note: str?, channel: str? }"),
            ("when fetch.count > 0", 'when input.channel == "web"'),
        ),
        {("input-field-added-optional", C), ("stage-when-changed", BIS)},
    ),
    # -- map
    (
        "map limit",
        SHOP,
        shop(("at most 4 at once", "at most 8 at once")),
        {("stage-map-limit-changed", C)},
    ),
    (
        "map policy",
        SHOP,
        shop(("at most 4 at once", "at most 4 at once, on failure continue")),
        {("stage-map-policy-changed", BIS)},
    ),
    (
        "map source",
        shop(("count: int (>= 0) }", "count: int (>= 0), spare: list[Item] }")),
        shop(
            ("count: int (>= 0) }", "count: int (>= 0), spare: list[Item] }"),
            ("map fetch.items", "map fetch.spare"),
        ),
        {("stage-map-source-changed", BIS)},
    ),
    # -- kind
    (
        "sync to async",
        # Not SHOP: beside any async stage, its stage `check` would generate a second
        # class `CheckContext` (WF209).
        ABCD,
        edit(ABCD, ("  stage b {", "  async stage b {")),
        {("stage-kind-changed", BIS), ("stage-poll-changed", C)},
    ),
    # -- the flow
    (
        "two groups merged",
        abcd("a -> b -> c -> d"),
        abcd("a -> [b, c] -> d"),
        {("stage-order-changed", BIS), ("stage-renumbered", BIS)},
    ),
    (
        "a group split",
        abcd("a -> [b, c] -> d"),
        abcd("a -> b -> c -> d"),
        {("stage-regrouped", C), ("stage-renumbered", BIS)},
    ),
    (
        "a stage added in a group of its own",
        ABCD,
        edit(
            abcd("a -> b -> x -> c -> d"),
            ("  flow", "  stage x { input none output { v: int } }\n  flow"),
        ),
        {("stage-added", BIS)},
    ),
    (
        "two stages swapped",
        abcd("a -> b -> c -> d"),
        abcd("a -> c -> b -> d"),
        {("stage-order-changed", BIS), ("stage-renumbered", BIS)},
    ),
    (
        "flow input from another stage",
        edit(ABCD, ("stage b { input none", "stage b { input { v: int }")),
        edit(
            ABCD,
            ("stage b { input none", "stage b { input { v: int }"),
            ("flow a -> b -> c -> d", "flow a -> c -> b -> d"),
        ),
        {
            ("stage-order-changed", BIS),
            ("stage-renumbered", BIS),
            ("stage-input-source-changed", BIS),
        },
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_rule(tmp_path: Path, old: str, new: str, expected: set[tuple[str, Verdict]]) -> None:
    diff = diff_of(tmp_path, old, new)
    assert found(diff) == expected, [(c.code, c.verdict.value, c.message) for c in diff.changes]
    assert all(change.message and "\n" not in change.message for change in diff.changes)


def test_identical_plans_have_no_changes(tmp_path: Path) -> None:
    diff = diff_of(tmp_path, SHOP, SHOP)
    assert diff.identical and diff.compatible and diff.changes == []
    assert diff.safe_for(["fetch", "price", "check", "total"])


# -- which runs each change harms ------------------------------------------------

RUN_AT = {
    "created": set[str](),
    "fetching": {"fetch"},
    "pricing": {"fetch", "price", "check"},
    "totalling": {"fetch", "price", "check", "total"},
}


@pytest.mark.parametrize(
    ("new", "safe"),
    [
        pytest.param(
            shop(("count: int (>= 0) }", "count: int (>= 1) }")),
            {"created"},
            id="a narrowed output: only runs that have not started the stage",
        ),
        pytest.param(
            shop(
                ("[price, check]", "[price, check, audit]"),
                (
                    "  flow fetch",
                    "  stage audit { input none needs fetch output { ok: bool } }\n  flow fetch",
                ),
            ),
            {"created"},
            id="a stage added: runs that cannot have opened its group",
        ),
        pytest.param(
            shop(("when fetch.count > 0", "when fetch.count > 1")),
            {"created", "fetching"},
            id="a when changed: runs that have not opened its group",
        ),
        pytest.param(
            shop(("note: str? }", "note: str?, channel: str }")),
            set[str](),
            id="a required input field: no run",
        ),
        pytest.param(
            shop(("retry 3 times", "retry 5 times")),
            set(RUN_AT),
            id="a retry policy: every run",
        ),
        pytest.param(
            shop(FIELD, ("when fetch.count > 0", 'when fetch.mode == "fast"')),
            {"created"},
            id="a when reading a new field: runs that have not stored the field",
        ),
    ],
)
def test_safe_for_runs_by_where_they_stand(tmp_path: Path, new: str, safe: set[str]) -> None:
    diff = diff_of(tmp_path, SHOP, new)
    assert {name for name, started in RUN_AT.items() if diff.safe_for(started)} == safe
    for started in RUN_AT.values():
        assert diff.safe_for(started) == (diff.breaking_for(started) == [])


def test_a_new_field_read_by_a_when_spares_runs_that_decided_it(tmp_path: Path) -> None:
    diff = diff_of(
        tmp_path, SHOP, shop(FIELD, ("when fetch.count > 0", 'when fetch.mode == "fast"'))
    )
    reads = the(diff, "when-reads-new-field")
    assert reads.affects == {"fetch"} and reads.unless_started == {"check"}
    assert reads.breaks({"fetch"}) and not reads.breaks({"fetch", "check"})
    assert not reads.breaks(set())


def test_order_changes_spare_runs_that_started_both(tmp_path: Path) -> None:
    diff = diff_of(tmp_path, abcd("a -> b -> c -> d"), abcd("a -> c -> b -> d"))
    change = the(diff, "stage-order-changed")
    # `a` started: `b`'s group may be open already, its row PENDING
    assert change.affects == {"a", "b"} and change.unless_started == {"c"}
    assert diff.safe_for(set())
    assert not diff.safe_for({"a"})
    assert not diff.safe_for({"a", "b"})
    assert not change.breaks({"a", "b", "c"})  # `c` ran: this change spares the run, but
    renumbered = diff.breaking_for({"a", "b", "c"})  # … both moved to other group numbers
    assert {(c.code, c.stage_id) for c in renumbered} == {
        ("stage-renumbered", "b"),
        ("stage-renumbered", "c"),
    }


def test_a_started_stage_keeps_its_group_number(tmp_path: Path) -> None:
    """Runs keep their rows as numbered by the old plan: a split group moves the stages
    after it to other numbers, which only runs that have not reached them can take."""
    diff = diff_of(tmp_path, abcd("a -> [b, c] -> d"), abcd("a -> b -> c -> d"))
    renumbered = [c for c in diff.changes if c.code == "stage-renumbered"]
    assert {c.stage_id for c in renumbered} == {"c", "d"}
    assert "runs in group 3, was group 2" in renumbered[0].message
    assert diff.safe_for(set())
    assert not diff.safe_for({"a"})  # the split group may be open, its rows PENDING
    assert not diff.safe_for({"a", "b", "c"})


def test_an_added_stage_names_the_stages_past_it(tmp_path: Path) -> None:
    new = shop(
        ("[price, check]", "[price, check, audit]"),
        (
            "  flow fetch",
            "  stage audit { input none needs fetch output { ok: bool } }\n  flow fetch",
        ),
    )
    change = the(diff_of(tmp_path, SHOP, new), "stage-added")
    # past it: a run that started a stage of its group or after, or finished `fetch` (then
    # the group's rows exist, PENDING, whether or not a stage of it has started)
    assert change.affects == {"fetch", "price", "check", "total"}
    assert "`check`, `price` or `total` is past its place and would never run it" in change.message


def test_a_change_to_the_first_group_is_breaking_for_every_run(tmp_path: Path) -> None:
    """A run gets the rows of the first group when it is claimed, PENDING: no started
    stage tells it from a run that was not claimed yet."""
    new = edit(
        abcd("x -> a -> b -> c -> d"),
        ("  flow", "  stage x { input none output { v: int } }\n  flow"),
    )
    change = the(diff_of(tmp_path, ABCD, new), "stage-added")
    assert change.verdict is B and change.condition == "every run in flight"


def test_a_rename_is_guessed(tmp_path: Path) -> None:
    new = shop(
        ("[price, check]", "[price, verify]"),
        ("stage check {", "stage verify {"),
        ("check?", "verify?"),
    )
    diff = diff_of(tmp_path, SHOP, new)
    assert "renamed to `verify`?" in the(diff, "stage-removed").message
    assert "renamed from `check`?" in the(diff, "stage-added").message


def test_a_narrowed_output_names_its_readers(tmp_path: Path) -> None:
    diff = diff_of(tmp_path, SHOP, shop(("count: int (>= 0) }", "count: int (>= 1) }")))
    change = the(diff, "stage-output-type-narrowed")
    assert change.affects == {"fetch"} and change.stage_id == "fetch"
    assert "`count`: int (>= 0) → int (>= 1)" in change.message
    assert "read by `check`, `price` and `total`" in change.message


def test_an_output_read_by_no_stage_may_narrow(tmp_path: Path) -> None:
    old = edit(
        ABCD,
        (
            "stage b { input none output { v: int } }",
            "stage b { input none output { v: int, w: int } }",
        ),
    )
    new = edit(
        ABCD,
        (
            "stage b { input none output { v: int } }",
            "stage b { input none output { v: int, w: int (>= 0) } }",
        ),
    )
    change = the(diff_of(tmp_path, old, new), "stage-output-type-narrowed")
    assert change.verdict is C and "no stage of the new plan reads it" in change.message


# -- where changes are ----------------------------------------------------------


def test_changes_point_into_the_new_source_else_the_old(tmp_path: Path) -> None:
    new = edit(WITHOUT_CHECK, ("count: int (>= 0) }", "count: int (>= 1) }"))
    diff = diff_of(tmp_path, SHOP, new)
    narrowed = the(diff, "stage-output-type-narrowed").location
    assert narrowed is not None and narrowed.file.endswith("new.wf")
    assert (narrowed.line, narrowed.column) == (9, 45)  # `count` in the new file
    removed = the(diff, "stage-removed").location
    assert removed is not None and removed.file.endswith("old.wf")
    assert removed.line == 17  # `stage check` in the old file
    needs = the(diff, "stage-needs-removed").location
    assert needs is not None and needs.file.endswith("old.wf") and needs.line == 25


def test_a_nested_field_points_at_its_type(tmp_path: Path) -> None:
    diff = diff_of(tmp_path, SHOP, shop(("price: float (>= 0) }", "price: float (> 0) }")))
    change = the(diff, "input-type-narrowed")
    assert change.path == ("input", "items", "[]", "price")
    assert change.location is not None and change.location.line == 3  # in `type Item`


def test_plans_alone_have_no_locations(tmp_path: Path) -> None:
    (tmp_path / "shop.wf").write_text(SHOP)
    plan = load_side(tmp_path / "shop.wf").plan
    diff = diff_plans(plan, plan.model_copy(update={"name": "Other"}).with_fingerprint())
    assert [(c.code, c.location) for c in diff.changes] == [("workflow-name-changed", None)]


# -- plan-level changes the language cannot make on its own ----------------------


def _stage_update(plan: Plan, stage_id: str, **update: object) -> Plan:
    stages = tuple(
        stage.model_copy(update=update) if stage.id == stage_id else stage for stage in plan.stages
    )
    return plan.model_copy(update={"stages": stages}).with_fingerprint()


@pytest.fixture
def shop_plan(tmp_path: Path) -> Plan:
    (tmp_path / "shop.wf").write_text(SHOP)
    return load_side(tmp_path / "shop.wf").plan


def test_implementation_only(shop_plan: Plan) -> None:
    new = _stage_update(shop_plan, "fetch", implementation="shop_v2.stages:Fetch")
    diff = diff_plans(shop_plan, new)
    assert found(diff) == {("stage-implementation-changed", C)}
    assert diff.compatible


def test_map_removed_and_added(shop_plan: Plan) -> None:
    from wfc.plan import InputSource

    unmapped = _stage_update(shop_plan, "price", map=None, input_source=InputSource.NONE)
    assert found(diff_plans(shop_plan, unmapped)) == {("stage-map-removed", BIS)}
    assert found(diff_plans(unmapped, shop_plan)) == {("stage-map-added", BIS)}


def test_map_policy_from_a_plan(shop_plan: Plan) -> None:
    spec = MapSpec(over=("fetch", "items"), at_most=4, on_item_failure=ItemFailure.CONTINUE)
    diff = diff_plans(shop_plan, _stage_update(shop_plan, "price", map=spec))
    assert the(diff, "stage-map-policy-changed").affects == {"price"}


def test_kind_from_a_plan(shop_plan: Plan) -> None:
    from wfc.plan import PollPolicy

    new = _stage_update(shop_plan, "total", kind=StageKind.ASYNC, poll=PollPolicy())
    assert ("stage-kind-changed", BIS) in found(diff_plans(shop_plan, new))


# -- the contract around the rules ----------------------------------------------

UPGRADES = Path(__file__).resolve().parents[2] / "docs" / "upgrades.md"
PACKAGE = Path(__file__).resolve().parents[2] / "wfc" / "compiler" / "diff"


def test_every_code_is_documented() -> None:
    """Each code the rules can make is in the table of docs/upgrades.md: the literal codes
    in the rules' source, and every code the cases above produce."""
    import re

    doc = UPGRADES.read_text()
    literal = set()
    for module in PACKAGE.glob("*.py"):
        literal |= set(
            re.findall(
                r'"((?:stage|input|output|workflow|when|map|annotations)-[a-z-]+[a-z])"',
                module.read_text(),
            )
        )
    made = {code for _, old, new, expected in CASES for code, _ in expected}
    prefixes = ("stage-input-", "stage-output-", "stage-config-", "input-", "output-")
    suffixes = [*("field-added-optional", "field-added-required", "field-removed")]
    suffixes += ["default-changed", "type-widened", "type-narrowed", "type-changed"]
    composed = {p + s for p in prefixes for s in suffixes} | {
        "when-reads-new-field",
        "map-reads-new-field",
    }
    literal -= set(prefixes)
    missing = sorted(code for code in literal | made | composed if f"`{code}`" not in doc)
    assert missing == []


def test_the_rules_need_nothing_but_the_plan() -> None:
    """The rules import only the Plan IR (and each other), so the runtime could move them
    out of the compiler package and use them without loading the compiler."""
    import ast

    core = ["model", "context", "values", "schemas", "fields", "roles", "flow", "rules"]
    allowed = {"wfc.plan", "wfc.formats"} | {f"wfc.compiler.diff.{name}" for name in core}
    for name in core:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        imported = {
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wfc")
        }
        imported |= {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.startswith("wfc")
        }
        assert imported <= allowed | {"wfc.compiler.diff"}, (name, imported - allowed)


def test_yaml_sources_have_places_too(tmp_path: Path) -> None:
    from tests.unit.test_yaml_front import WF, YAML

    (tmp_path / "reviews.wf").write_text(WF)
    (tmp_path / "old.wf.yaml").write_text(YAML)
    (tmp_path / "new.wf.yaml").write_text(
        edit(
            YAML,
            (
                'config: {threshold: "float = 0.5"}',
                'config: {threshold: "float (0.0 .. 1.0) = 0.5"}',
            ),
        )
    )
    text = load_side(tmp_path / "reviews.wf")
    old, new = load_side(tmp_path / "old.wf.yaml"), load_side(tmp_path / "new.wf.yaml")
    assert diff_plans(text.plan, old.plan).identical  # the two forms are one plan
    diff = diff_plans(old.plan, new.plan, old_source=old.locations, new_source=new.locations)
    change = the(diff, "stage-config-type-narrowed")
    assert change.verdict is B
    assert change.location is not None and change.location.file.endswith("new.wf.yaml")
    assert change.location.line == 20  # the `config:` line of `judge`


def test_long_lists_of_stages_are_cut_short_in_messages_only(tmp_path: Path) -> None:
    count = 60
    stages = "\n".join(f"  stage s{i} {{ input none output {{ v: int }} }}" for i in range(count))
    flow = " -> ".join(f"s{i}" for i in range(count))
    old = f"workflow long {{\n  input {{ v: int }}\n  output {{ v: int }}\n{stages}\n  flow {flow}\n}}\n"
    new = edit(
        old,
        ("  flow s0 ->", "  stage early { input none output { v: int } }\n  flow s0 -> early ->"),
    )
    change = the(diff_of(tmp_path, old, new), "stage-added")
    assert len(change.affects) == count
    assert "or 54 more is past its place" in change.message
    assert change.condition.endswith("or 55 more")
