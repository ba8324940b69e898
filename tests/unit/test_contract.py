"""The data contract against the DDL, the Glue table definitions, the docs, the generator and the
gates: one declaration, everything else derived from it or held to it."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ioc_analytics import safety
from ioc_analytics.backends.aws import glue
from ioc_analytics.cli import main
from ioc_analytics.lake import contract
from ioc_analytics.lake.catalog import load_catalog
from tests.conftest import ROOT
from tests.helpers import read_events, read_scores

CATALOG = load_catalog("s3://lake")


def test_every_ddl_table_has_a_contract_with_its_columns_types_and_partition_keys():
    assert sorted(CONTRACTS := contract.CONTRACTS) == sorted(CATALOG.tables)
    for name, table in CATALOG.tables.items():
        declared = CONTRACTS[name]
        assert [(c.name, c.type) for c in declared.columns] == [(c.name, c.athena_type) for c in table.columns], name
        assert [(c.name, c.type) for c in declared.partition_keys] == [
            (c.name, c.athena_type) for c in table.partition_keys], name
        for column in (*declared.columns, *declared.partition_keys):
            assert column.why and column.severity in contract.SEVERITIES, (name, column.name)
        for key in declared.unique:
            assert {k for k in key} <= {c.name for c in declared.columns}, (name, key)


def test_the_ddl_projection_and_the_contract_agree_on_the_assessment_types():
    events = CATALOG.table("assessment_events")
    assert events.enum_values("assessment_type") == contract.ASSESSMENT_TYPES
    assert contract.contract("assessment_events").column("assessment_type").domain.values == contract.ASSESSMENT_TYPES


def test_the_glue_tables_carry_the_contracts_columns_types_and_comments():
    for name, table in CATALOG.tables.items():
        made = glue.table_input(table)
        declared = contract.CONTRACTS[name]
        assert [(c["Name"], c["Type"]) for c in made["StorageDescriptor"]["Columns"]] == [
            (c.name, c.type) for c in declared.columns]
        assert [(c["Name"], c["Type"]) for c in made["PartitionKeys"]] == [
            (c.name, c.type) for c in declared.partition_keys]
        for column in made["StorageDescriptor"]["Columns"] + made["PartitionKeys"]:
            assert 0 < len(column["Comment"]) <= glue.COMMENT_CHARS
            assert column["Comment"].startswith(declared.column(column["Name"]).describe()[:100])


def test_the_docs_table_is_generated_from_the_contract(capsys):
    page = (ROOT / "docs" / "data-contract.md").read_text()
    assert page == contract.markdown(), "regenerate it: ioc contract > docs/data-contract.md"
    assert main(["contract"]) == 0 and capsys.readouterr().out == page
    for table in contract.CONTRACTS.values():
        assert f"## `{table.name}`" in page
        for column in table.columns:
            assert f"| `{column.name}` | `{column.type}` |" in page
    assert main(["contract", "ocean_scores"]) == 0
    shown = capsys.readouterr().out
    assert re.search(r"^openness\s+double\s+0 to 100; never NaN or ±Infinity; not null \(error\)$", shown, re.M)
    assert main(["contract", "no_such_table"]) == 2


def test_the_generator_writes_only_what_the_contract_allows(sample_lake):
    events, scores = read_events(sample_lake), read_scores(sample_lake)
    for frame, table in ((events, "assessment_events"), (scores, "ocean_scores")):
        for column in contract.contract(table).columns:
            if isinstance(column.domain, contract.Labels):
                assert set(frame[column.name].dropna()) <= set(column.domain.values), (table, column.name)
                assert len(set(frame[column.name])) == len(column.domain.values), "every label is drawn"
    facets = {k for m in scores["facets"].head(50) for k, _ in m}
    assert facets == set(contract.FACET_KEYS)


@pytest.mark.parametrize(("declared", "held", "ok"), [
    ("string", pa.string(), True), ("string", pa.large_string(), True),
    ("string", pa.dictionary(pa.int32(), pa.string()), True), ("string", pa.int64(), False),
    ("int", pa.int32(), True), ("int", pa.int16(), True), ("int", pa.int64(), False), ("int", pa.uint32(), False),
    ("int", pa.string(), False), ("bigint", pa.int64(), True), ("bigint", pa.int32(), True),
    ("double", pa.float64(), True), ("double", pa.float32(), True), ("double", pa.int64(), False),
    ("double", pa.string(), False), ("timestamp", pa.timestamp("ms"), True), ("timestamp", pa.timestamp("ns"), True),
    ("timestamp", pa.timestamp("us", tz="UTC"), True), ("timestamp", pa.string(), False),
    ("boolean", pa.bool_(), True), ("boolean", pa.int8(), False),
    ("map<string,double>", pa.map_(pa.string(), pa.float64()), True),
    ("map<string,double>", pa.map_(pa.string(), pa.string()), False),
    ("map<string,struct<score:double,responses:int,std_dev:double>>",
     pa.map_(pa.string(), pa.struct([("score", pa.float64()), ("responses", pa.int32()), ("std_dev", pa.float64())])),
     True),
    ("map<string,struct<score:double,responses:int,std_dev:double>>",
     pa.map_(pa.string(), pa.struct([("score", pa.float64()), ("responses", pa.int32())])), False),
])
def test_a_file_column_is_accepted_when_it_reads_as_the_declared_type(declared, held, ok):
    assert contract.accepts(declared, held) is ok


CELLS = ["=1+1", "+1", "-1", "@SUM(A1)", " =HYPERLINK(\"http://x\",\"open\")", "\u00a0=1", "\uff1dcmd", "\tx", "\rx",
         "\nx", "Technology", "0-2 years", "20+ years", "a=b", "Middle East & Africa", "user@example.com", ""]


def test_python_and_duckdb_agree_on_what_is_unsafe():
    con = duckdb.connect()
    texts = [*CELLS, "a\x01b", "ok\x7f", "\u202eevil", "zero\u200bwidth", "caf\u00e9", "日本語"]
    for text in texts:
        (in_duckdb,) = con.execute("SELECT regexp_matches(?, ?)", [text, safety.unsafe_regex("re2")]).fetchone()
        assert in_duckdb is safety.is_unsafe(text), repr(text)
    assert [safety.is_formula_like(t) for t in CELLS] == [True] * 10 + [False] * 7


def test_neutralise_prefixes_a_quote_to_formula_like_text_only():
    for text in CELLS:
        out, changed = safety.neutralise(text)
        assert changed is safety.is_formula_like(text) and out == ("'" + text if changed else text)
        assert not safety.is_formula_like(out)


def test_every_rule_is_valid_duckdb_and_passes_on_the_generated_day(sample_lake):
    """The rules compile, and good data breaks none (each raw table on one generated day)."""
    con = duckdb.connect()
    events = sorted(str(p) for p in Path(sample_lake, "assessments", "2024", "01", "10").glob("*/*.parquet"))
    scores = [str(Path(sample_lake, "ocean_scores", "2024", "01", "part-20240110.parquet"))]
    con.execute(f"CREATE VIEW e AS SELECT *, '2024/01/10' AS date, 'career' AS assessment_type "
                f"FROM read_parquet({events})")
    con.execute(f"CREATE VIEW s AS SELECT *, '2024' AS year, '01' AS month FROM read_parquet({scores})")
    for view, table in (("e", "assessment_events"), ("s", "ocean_scores")):
        for rule in contract.rules(table):
            (count,) = con.execute(f"SELECT count(*) FROM ({rule.query.format(batch=view)})").fetchone()
            assert count == 0, rule.name


def test_derived_rows_are_held_to_their_contract():
    good = pa.table({"dimension": ["region", "role"], "value": ["Europe", None], "users": [12, 3],
                     "sessions": [20, 4], "completed_sessions": [15, 4], "completion_rate": [0.75, 1.0]})
    assert contract.check_rows("user_breakdowns", good, {"date": "2024/01/10"}) == []
    bad = good.set_column(1, "value", pa.array(["=cmd|' /C calc'!A0", "Team Lead"])).set_column(
        5, "completion_rate", pa.array([float("nan"), 1.5]))
    found = {(b.rule.name, b.count) for b in contract.check_rows("user_breakdowns", bad, {"date": "2024/01/10"})}
    assert found == {("value: unsafe text", 1), ("completion_rate: NaN", 1), ("completion_rate: out of range", 1)}
    twice = pa.concat_tables([good, good.slice(0, 1)])
    assert [(b.rule.name, b.samples) for b in contract.check_rows("user_breakdowns", twice)] == [
        ("dimension, value: duplicate key", ["region, Europe (2 rows)"])]
    [lacking] = contract.check_rows("user_breakdowns", good.drop_columns(["users"]))
    assert (lacking.rule.column, lacking.rule.breach, lacking.count) == ("users", "missing column", 2)


def test_a_map_holding_a_key_twice_in_place_of_another_breaks_its_contract(tmp_path):
    """Map keys need not be unique in Parquet: a repeated key hides a missing one."""
    import pyarrow.parquet as pq

    derailers = list(contract.DARK_SIDE_INDICATORS)
    twice = derailers[:-1] + [derailers[0]]  # 11 entries: dutiful missing, excitable twice
    con = duckdb.connect()
    data = pa.table({"assessment_id": ["a-1", "a-2"],
                     "dark_side_indicators": pa.array([list(zip(twice, [50.0] * 11, strict=True)),
                                                       list(zip(derailers, [50.0] * 11, strict=True))],
                                                      pa.map_(pa.string(), pa.float64()))})
    pq.write_table(data, tmp_path / "maps.parquet")
    con.execute(f"CREATE VIEW batch AS SELECT * FROM read_parquet('{tmp_path / 'maps.parquet'}')")
    found = {}
    for rule in contract.rules("ocean_scores"):
        if rule.column == "dark_side_indicators" and not rule.part and rule.breach != "null":
            found[rule.breach] = con.execute(f"SELECT sample FROM ({rule.query.format(batch='batch')})").fetchall()
    assert found == {"missing map key": [("a-1: dutiful",)], "unknown map key": [],
                     "duplicate map key": [("a-1: excitable",)]}


def test_two_rows_without_a_label_are_one_key_twice_where_the_label_may_be_null():
    rows = pa.table({"dimension": ["role", "role"], "value": pa.array([None, None], pa.string()), "users": [12, 13],
                     "sessions": [20, 21],
                     "completed_sessions": [15, 16], "completion_rate": [0.75, 0.76]})
    [twice] = contract.check_rows("user_breakdowns", rows, {"date": "2024/01/10"})
    assert (twice.rule.breach, twice.samples) == ("duplicate key", ["role, null (2 rows)"])


def test_a_derived_partition_of_the_wrong_type_is_named_not_a_traceback():
    rows = pa.table({"dimension": ["role"], "value": ["Manager"], "users": [12], "sessions": [20],
                     "completed_sessions": [15], "completion_rate": ["0.75"], "surprise": [1]})
    found = {(b.rule.column, b.rule.breach) for b in contract.check_rows("user_breakdowns", rows, {"date": "x"})}
    assert found == {("completion_rate", "type"), ("surprise", "unexpected column")}


@pytest.mark.parametrize("text", [" \t=1", "\u00a0\r=1", "\u2003=cmd", "\u202f+1", "\n@x"])
def test_spaces_and_line_breaks_of_any_kind_before_a_formula_are_seen(text):
    assert safety.is_formula_like(text) and safety.neutralise(text) == ("'" + text, True)


@pytest.mark.parametrize("text", ["a\u061cb", "tag\U000e0041", "line\u2028break", "bom\ufeff"])
def test_invisible_formatting_characters_are_unsafe_in_a_label(text):
    con = duckdb.connect()
    (in_duckdb,) = con.execute("SELECT regexp_matches(?, ?)", [text, safety.unsafe_regex("re2")]).fetchone()
    assert safety.is_unsafe(text) and in_duckdb and not safety.is_formula_like(text)
