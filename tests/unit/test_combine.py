"""`combine`: statements taken apart and joined as data-modifying CTEs, on the SQL text."""

from __future__ import annotations

from wfc.runtime.adapters.sql import combine

OUTBOX = (
    " WITH seq AS ( UPDATE runs SET last_sequence = last_sequence + $1 WHERE id = $2 "
    "RETURNING last_sequence - $1 AS base ) INSERT INTO outbox (id, sequence) "
    "SELECT e.id, seq.base + e.ord FROM seq, jsonb_to_recordset(CAST($3 AS jsonb)) AS e("
    "id text, ord int) RETURNING id, sequence"
)
BLOB = (
    "INSERT INTO blobs (key, data) VALUES ($1::VARCHAR, $2::BYTEA) "
    "ON CONFLICT (key) DO UPDATE SET data = excluded.data"
)


def test_a_statement_with_ctes_comes_apart_into_them_and_its_body() -> None:
    part = combine.split(OUTBOX)
    assert part is not None
    assert part.ctes == (
        "seq AS ( UPDATE runs SET last_sequence = last_sequence + $1 WHERE id = $2 "
        "RETURNING last_sequence - $1 AS base )",
    )
    assert part.names == {"seq"}
    assert part.body.startswith("INSERT INTO outbox") and part.body.endswith("sequence")
    assert {"runs", "outbox"} <= part.tables


def test_what_is_quoted_is_not_read_as_sql() -> None:
    """A parenthesis, a parameter marker or a table name inside quotes is text."""
    sql = "WITH a AS (SELECT ')' AS x FROM \"from jobs\" WHERE y = '$1') UPDATE runs SET z = $1"
    part = combine.split(sql)
    assert part is not None
    assert part.ctes == ("a AS (SELECT ')' AS x FROM \"from jobs\" WHERE y = '$1')",)
    assert part.body == "UPDATE runs SET z = $1"
    assert "jobs" not in part.tables
    assert combine.shift(sql, 2).endswith("WHERE y = '$1') UPDATE runs SET z = $3")


def test_on_conflict_do_update_names_no_table() -> None:
    part = combine.split(BLOB)
    assert part is not None and part.tables == {"blobs"}


def test_a_foreign_key_ties_a_table_to_the_one_it_points_at() -> None:
    """A stage row's insert checks its run: it may not travel with a write to `runs`."""
    part = combine.split("INSERT INTO stages (id, run_id) VALUES ($1, $2)")
    assert part is not None and {"stages", "runs"} <= part.tables


def test_only_data_statements_travel_with_others() -> None:
    assert combine.split("COMMIT") is None
    assert combine.split("WITH RECURSIVE t(n) AS (SELECT 1) SELECT n FROM t") is None


def test_parts_joined_do_their_writes_then_answer_as_the_carrier() -> None:
    """Each part's parameters follow the carrier's, in order; the parts' own CTEs are
    hoisted to the top level, where PostgreSQL requires data-modifying ones."""
    blob, outbox = combine.split(BLOB), combine.split(OUTBOX)
    assert blob is not None and outbox is not None
    sql = combine.joined([(blob, 2)], (outbox, 3))
    assert sql.startswith(
        "WITH wfc_part_0 AS (INSERT INTO blobs (key, data) VALUES ($4::VARCHAR, $5::BYTEA) "
    )
    assert ", seq AS ( UPDATE runs SET last_sequence = last_sequence + $1 WHERE id = $2 " in sql
    assert sql.endswith(outbox.body)
    alone = combine.joined([(outbox, 3), (blob, 2)])
    assert alone.startswith("WITH seq AS ( UPDATE runs SET last_sequence = last_sequence + $1 ")
    assert "wfc_part_1 AS (INSERT INTO blobs (key, data) VALUES ($4::VARCHAR" in alone
    assert alone.endswith(") SELECT 1")
