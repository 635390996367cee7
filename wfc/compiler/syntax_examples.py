"""Bad inputs that stand for a class of syntax mistakes, each with the message and help it gets.

`parser` matches an error against these with lark's `match_examples` (`EXAMPLES`, whole
files), or by the parser state they fail in (`MAP_EXAMPLES`, `WAIT_EXAMPLES`, at any
depth). Data only, kept apart so the parser module stays about parsing.
"""

from __future__ import annotations

from typing import Any

# Bad inputs that stand for a class of mistakes, with the message and hint for it.
EXAMPLES: dict[Any, list[str]] = {
    ("expected `:` between the field name and its type", "write fields as `name: type`"): [
        "workflow w { input { a str } }",
        "type T { a str }",
        "workflow w { stage s { output { a int } } }",
    ],
    ("expected a type after `:`", "give the field a type, e.g. `name: str`"): [
        "workflow w { input { a: } }",
        "type T { a: }",
        "type T { a: , b: int }",
    ],
    (
        "stage settings must be inside the stage's braces",
        "put `input`, `output`, `config`, `needs`, `when`, `map`, `retry`, `timeout`, `poll` "
        "and `priority` inside `stage name { … }`",
    ): [
        "workflow w { stage s output { a: int } }",
        "workflow w { stage s needs a }",
        "workflow w { stage s when a.b }",
        "workflow w { stage s map a.b }",
    ],
    (
        "`flow` needs at least one stage",
        "write the order of stages, e.g. `flow a -> [b, c] -> d`",
    ): [
        "workflow w { flow }",
        "workflow w { flow -> a }",
    ],
    ("a flow step is missing after `->`", "remove the trailing `->` or name the next stage"): [
        "workflow w { flow a -> }",
        "workflow w { flow a -> -> b }",
    ],
    (
        "`input` needs a record, a type name, `from <stage>` or `none`",
        "e.g. `input { url: url }`",
    ): [
        "workflow w { stage s { input } }",
        "workflow w { stage s { input output { a: int } } }",
    ],
    (
        "`retry` needs a count: `retry 3 times`",
        "e.g. `retry 3 times, backoff exponential 1s x2 max 1m`",
    ): [
        "workflow w { stage s { retry } }",
        "workflow w { stage s { retry times } }",
        "workflow w { stage s { retry 3 } }",
    ],
}

# Slips in `map`, matched by the parser state they fail in, at any depth: lark's
# `match_examples` also compares the depth of the parse stack, so an example only
# matches a stage that sits where it sits (first in its workflow, with no title).
MAP_EXAMPLES: dict[tuple[str, str], list[str]] = {
    (
        "`map` needs the path of a list",
        "e.g. `map split.pages` or `map input.urls, at most 16 at once`",
    ): [
        "workflow w { stage s { map } }",
        "workflow w { stage s { map , at most 3 at once } }",
        "workflow w { stage s { map 3 } }",
        # `map` then the next setting: its keyword is read as the path.
        "workflow w { stage s { map output { } } }",
        "workflow w { stage s { map needs a } }",
        'workflow w { stage s { map description "x" } }',
    ],
    (
        "separate the options of `map` with commas",
        "e.g. `map split.pages, at most 16 at once, on failure continue`",
    ): [
        "workflow w { stage s { map a.b at most 3 at once } }",
        "workflow w { stage s { map a on failure continue } }",
    ],
    (
        "a `,` after the path of `map` starts an option",
        "the options are `at most <n> at once` and `on failure continue` (or `fail`)",
    ): [
        "workflow w { stage s { map a.b, } }",
        "workflow w { stage s { map a.b, output { } } }",
    ],
    (
        "write the limit as `at most <n> at once`",
        "e.g. `map split.pages, at most 16 at once`",
    ): [
        "workflow w { stage s { map a.b, at most 3 } }",
        "workflow w { stage s { map a.b, at most 3 at } }",
        "workflow w { stage s { map a.b, at most } }",
        "workflow w { stage s { map a.b, at 3 } }",
    ],
    (
        "`on failure` takes `fail` or `continue`",
        "e.g. `map split.pages, on failure continue`",
    ): [
        "workflow w { stage s { map a.b, on failure } }",
        "workflow w { stage s { map a.b, on continue } }",
        # the next setting's keyword read as the policy
        "workflow w { stage s { map a.b, on failure output { } } }",
    ],
}


# Slips in `sleep` and `wait for`, matched by parser state as `map`'s are.
WAIT_EXAMPLES: dict[tuple[str, str], list[str]] = {
    (
        "`sleep` takes a duration, or `until` and the path of a datetime",
        "e.g. `sleep 1h30m` or `sleep until input.publish_at`; a duration is positive",
    ): [
        "workflow w { stage s { sleep -1h } }",
        "workflow w { stage s { sleep } }",
        "workflow w { stage s { sleep 5 } }",
        "workflow w { stage s { sleep until } }",
        "workflow w { stage s { sleep until 3 } }",
    ],
    (
        "`wait for` names the signal to wait for",
        "e.g. `wait for approve, timeout 7d, on timeout continue`",
    ): [
        "workflow w { stage s { wait approve } }",
        "workflow w { stage s { wait } }",
        "workflow w { stage s { wait for } }",
        "workflow w { stage s { wait for 3 } }",
    ],
    (
        "a `,` after the signal of `wait for` starts an option",
        "the options are `timeout <duration>` and `on timeout fail` (or `continue`), "
        "e.g. `wait for approve, timeout 7d, on timeout continue`",
    ): [
        "workflow w { stage s { wait for a, } }",
        "workflow w { stage s { wait for a, timeout } }",
        "workflow w { stage s { wait for a, timeout -1d } }",
        "workflow w { stage s { wait for a, on } }",
        "workflow w { stage s { wait for a, on timeout } }",
        "workflow w { stage s { wait for a, on failure continue } }",
    ],
}
