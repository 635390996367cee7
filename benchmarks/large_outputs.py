"""Runs whose stages hand each other large outputs, as data pipelines do: CPU per run.

Run: `.venv/bin/python benchmarks/large_outputs.py` (`--records N`, `--stages N`,
`--store memory|sqlite`, `--runs N`). Reported, never asserted.

A run of `--stages` stages in a row: the first makes `--records` records (an id, a
sentence, a score and two tags: about 150 bytes of JSON each), each next one takes the
one before's output as its typed input and returns it reordered, the last counts them.
The benchmark shapes elsewhere pass `{"n": 1}`, so what the runtime does per byte of
output (validating, converting, checking, storing, copying and reading it back for the
next stages) shows only here. Beside each figure, the same stage bodies called directly
with one validation and one dump per hand-over: what any runtime that types its stages'
inputs must do at least. Memory: `wfc.testing`'s kernel, `TestKernel.run`; SQLite: a
fresh file, `run_and_wait` with a host in the process.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wfc.runtime import Workflow, WorkflowBuilder, define_stage, run_and_wait
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.hosts import make_kernel
from wfc.runtime.records import Status
from wfc.runtime.registry import WorkflowMap
from wfc.testing import make_test_kernel


class Seed(BaseModel):
    records: int


class Record(BaseModel):
    id: int
    text: str
    score: float
    tags: list[str]


class Records(BaseModel):
    records: list[Record]


class Count(BaseModel):
    count: int


async def make(ctx: Any) -> Records:
    return Records(
        records=[
            Record(id=i, text="lorem ipsum dolor sit amet " * 4, score=i / 7, tags=["a", "b"])
            for i in range(ctx.input.records)
        ]
    )


async def reorder(ctx: Any) -> Records:
    records = ctx.input.records
    return Records(records=records[1::2] + records[::2])


async def count(ctx: Any) -> Count:
    return Count(count=len(ctx.input.records))


def chain(stages: int) -> Workflow:
    """make → reorder × (stages − 2) → count."""
    builder = WorkflowBuilder("large", "large outputs", input=Seed).pipe(
        define_stage(id="make", input=Seed, output=Records, execute=make)
    )
    for n in range(stages - 2):
        stage = define_stage(id=f"reorder{n}", input=Records, output=Records, execute=reorder)
        builder = builder.pipe(stage)
    return builder.pipe(
        define_stage(id="count", input=Records, output=Count, execute=count)
    ).build()


async def bodies_alone(records: int, stages: int) -> None:
    """The stage bodies, each input validated from the one before's dump."""

    class Context:
        input: Any

    ctx = Context()
    ctx.input = Seed(records=records)
    output: BaseModel = await make(ctx)
    for _ in range(stages - 2):
        ctx.input = Records.model_validate(output.model_dump(mode="json"))
        output = await reorder(ctx)
    ctx.input = Records.model_validate(output.model_dump(mode="json"))
    await count(ctx)


async def cpu_ms(step: Callable[[], Awaitable[Any]], runs: int) -> float:
    await step()  # warm
    started = time.process_time()
    for _ in range(runs):
        await step()
    return (time.process_time() - started) * 1000 / runs


async def measure(store: str, records: int, stages: int, runs: int) -> dict[str, float]:
    workflow = chain(stages)
    seed = {"records": records}

    async def bodies() -> None:
        await bodies_alone(records, stages)

    if store == "memory":
        tk = make_test_kernel(workflow)

        async def one() -> None:
            assert (await tk.run("large", seed)).status is Status.COMPLETED

        return {"run": await cpu_ms(one, runs), "bodies": await cpu_ms(bodies, runs)}
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(f"sqlite+aiosqlite:///{Path(tmp) / 'large.db'}")
        await storage.prepare()
        kernel = make_kernel(storage, WorkflowMap([workflow]))

        async def hosted() -> None:
            run = await run_and_wait(kernel, "large", seed)
            assert run.status is Status.COMPLETED

        try:
            return {"run": await cpu_ms(hosted, runs), "bodies": await cpu_ms(bodies, runs)}
        finally:
            await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--store", choices=("memory", "sqlite"), action="append")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"CPU per run, mean of {args.runs} runs after one")
    print("| store | stages | records | CPU a run | stage bodies alone |")
    print("|---|---|---|---|---|")
    for store in args.store or ("memory", "sqlite"):
        found = asyncio.run(measure(store, args.records, args.stages, args.runs))
        print(
            f"| {store} | {args.stages} | {args.records:,} | {found['run']:.1f} ms "
            f"| {found['bodies']:.1f} ms |"
        )


if __name__ == "__main__":
    main()
