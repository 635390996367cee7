"""The mapped-stage benchmark's shape on DBOS Transact, for comparison (run in its own virtualenv).

One parent workflow enqueues one child workflow per item on the `items` queue,
waits for every child's result and sums them in a step: the gather. At most
AT_MOST children run at once over the WORKERS processes: each runs at most
AT_MOST / WORKERS (the queue's `worker_concurrency`). `DBOS_MAP_LIMIT=global`
sets the queue-wide `concurrency` instead, which measured a quarter slower with
4 workers (their dequeue transactions conflict, and DBOS backs off). A child is the item (`n + 1`); its result is
checkpointed once, in its own status row, as a wfc item's is in its row.
With `--step` the child does that in a step instead (one more checkpoint per item).

`python dbos_map.py worker URL ID AT_MOST WORKERS` serves the queues until
killed; `python dbos_map.py drive URL ITEMS [--step] [--client]` enqueues the
parent through a DBOSClient, waits for it and prints JSON with the parent's
workflow id (with `--client`, enqueues the children itself: DBOS's queue alone,
no parent and no gather). Times come from DBOS's own `workflow_status` rows,
read by `map_items.py`.
"""

from __future__ import annotations

import json
import os
import sys
import time

from dbos import DBOS, DBOSClient, DBOSConfig

POLL = 0.05  # DBOS's default queue poll is 1 s; as in dbos_shapes.py, a short one is fairest


@DBOS.step()
def plus_one(n: int) -> int:
    return n + 1


@DBOS.step()
def total(results: list[int]) -> int:
    return sum(results)


@DBOS.workflow()
def item(n: int) -> int:
    return n + 1


@DBOS.workflow()
def item_step(n: int) -> int:
    return plus_one(n)


@DBOS.workflow()
def mapped(count: int, with_step: bool) -> int:
    queue = DBOS.retrieve_queue("items")
    assert queue is not None
    child = item_step if with_step else item
    handles = [queue.enqueue(child, n) for n in range(count)]
    return total([handle.get_result() for handle in handles])


def serve(url: str, executor_id: str, at_most: int, workers: int) -> None:
    config: DBOSConfig = {
        "name": "wfc-bench",
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": "bench",
        "log_level": "WARNING",
        "use_listen_notify": True,
    }
    DBOS(config=config)
    DBOS.launch()  # workflows are registered at import, queues after launch
    DBOS.register_queue("runs", polling_interval_sec=POLL)
    if os.environ.get("DBOS_MAP_LIMIT") == "global":
        DBOS.register_queue("items", concurrency=at_most, polling_interval_sec=POLL)
    else:
        per_worker = max(1, at_most // workers)
        DBOS.register_queue("items", worker_concurrency=per_worker, polling_interval_sec=POLL)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def drive(url: str, count: int, with_step: bool, from_client: bool) -> None:
    """The parent workflow, enqueued and waited for; or, `from_client`, the children
    enqueued straight from this client, with no parent and no gather."""
    client = DBOSClient(system_database_url=url)
    if from_client:
        options = {"workflow_name": "item_step" if with_step else "item", "queue_name": "items"}
        options["app_version"] = "bench"
        handles = [client.enqueue(options, n) for n in range(count)]  # type: ignore[arg-type]
        result = sum(handle.get_result() for handle in handles)
        parent = None
    else:
        options = {"workflow_name": "mapped", "queue_name": "runs", "app_version": "bench"}
        handle = client.enqueue(options, count, with_step)  # type: ignore[arg-type]
        result = handle.get_result()
        parent = handle.workflow_id
    client.destroy()
    expected = count * (count - 1) // 2 + count
    print(json.dumps({"workflow_id": parent, "ok": result == expected}))


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        drive(sys.argv[2], int(sys.argv[3]), "--step" in sys.argv[4:], "--client" in sys.argv[4:])
