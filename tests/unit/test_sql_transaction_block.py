"""`SqlPersistence.transaction()`'s block (`persistence._Transaction`): the steps of the
`asynccontextmanager` it replaced, in order, over a stand-in for the connection's
transaction: `finish` before the commit, the block's or `finish`'s exception to the
connection's transaction (which rolls back) and on, and the failure that means a
predicted idempotency key was there already as `ExpectationFailed`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.memory.clock import FakeClock
from wfc.runtime.adapters.sql import persistence
from wfc.runtime.adapters.sql.persistence import _SqlTransaction, _Transaction


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("INSERT …", None, _Orig(sqlstate))


class _Block:
    """The connection's transaction: records how it ended, may fail its commit."""

    def __init__(self, log: list[Any], commit_fails: BaseException | None = None) -> None:
        self.log = log
        self.commit_fails = commit_fails

    async def __aenter__(self) -> str:
        self.log.append("begin")
        return "conn"

    async def __aexit__(self, kind: Any, error: Any, _trace: Any) -> None:
        if kind is None:
            self.log.append("commit")
            if self.commit_fails is not None:
                raise self.commit_fails
        else:
            self.log.append(("rollback", error))


class _Connections:
    def __init__(self, block: _Block) -> None:
        self.block = block

    def transaction(self) -> _Block:
        return self.block


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    async def finish(tx: _SqlTransaction) -> None:
        seen.append("finish")
        failure = getattr(tx, "finish_fails", None)
        if failure is not None:
            raise failure

    monkeypatch.setattr(_SqlTransaction, "finish", finish)
    return seen


def _block(log: list[Any], commit_fails: BaseException | None = None) -> _Transaction:
    return _Transaction(_Connections(_Block(log, commit_fails)), FakeClock())  # type: ignore[arg-type]


async def test_commits_after_finish(log: list[Any]) -> None:
    async with _block(log) as tx:
        assert isinstance(tx, _SqlTransaction)
        assert tx._conn == "conn"
        log.append("body")
    assert log == ["begin", "body", "finish", "commit"]


async def test_the_blocks_exception_rolls_back_and_goes_on(log: list[Any]) -> None:
    failure = ValueError("in the block")
    with pytest.raises(ValueError) as raised:
        async with _block(log):
            raise failure
    assert raised.value is failure
    assert log == ["begin", ("rollback", failure)]


async def test_finishs_exception_rolls_back_and_goes_on(log: list[Any]) -> None:
    failure = RuntimeError("finish")
    with pytest.raises(RuntimeError) as raised:
        async with _block(log) as tx:
            tx.finish_fails = failure  # type: ignore[attr-defined]
    assert raised.value is failure
    assert log == ["begin", "finish", ("rollback", failure)]


@pytest.mark.parametrize("where", ["body", "finish", "commit"])
async def test_a_predicted_key_there_already_is_expectation_failed(
    log: list[Any], where: str
) -> None:
    failure = _dbapi_error(persistence._DIVISION_BY_ZERO)
    block = _block(log, commit_fails=failure if where == "commit" else None)
    with pytest.raises(ExpectationFailed) as raised:
        async with block as tx:
            tx.key_predicted = True
            if where == "finish":
                tx.finish_fails = failure  # type: ignore[attr-defined]
            if where == "body":
                raise failure
    assert raised.value.__cause__ is failure


@pytest.mark.parametrize("where", ["body", "commit"])
@pytest.mark.parametrize(("predicted", "sqlstate"), [(False, "22012"), (True, "40001")])
async def test_other_database_errors_go_on(
    log: list[Any], where: str, predicted: bool, sqlstate: str
) -> None:
    failure = _dbapi_error(sqlstate)
    block = _block(log, commit_fails=failure if where == "commit" else None)
    with pytest.raises(DBAPIError) as raised:
        async with block as tx:
            tx.key_predicted = predicted
            if where == "body":
                raise failure
    assert raised.value is failure
