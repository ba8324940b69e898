"""The raw assessment_events suite (issue 5, in progress): Great Expectations on DuckDB views."""

from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ioc_analytics import quality
from ioc_analytics.errors import DataQualityError
from tests.helpers import ONE_DAY

DAY = ONE_DAY
FOLDER = DAY.strftime("%Y/%m/%d")






def _rewrite(lake, kind, change):
    path = next((lake / "assessments" / FOLDER / kind).glob("*.parquet"))
    pq.write_table(change(pq.read_table(path)), path)


def _set(table, column, index, value):
    values = table[column].to_pylist()
    values[index] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, table[column].type))


def test_good_data_passes_and_the_results_are_kept(one_day_lake, one_day_settings, tmp_path):
    report = quality.validate_events(one_day_settings, DAY)
    assert report.failures == [] and report.rows > 1000 and report.evaluated == len(quality.event_suite(DAY)) + 1
    quality.gate(report)
    kept = json.loads((tmp_path / "state" / "quality" / "assessment_events" / f"{DAY}.json").read_text())
    assert kept["rows"] == report.rows and kept["errors"] == 0


@pytest.mark.parametrize(("fault", "words"), [
    (lambda t: _set(t, "anonymous_user_id", 3, None), ["expect_column_values_to_not_be_null on anonymous_user_id",
                                                       "1 rows fail"]),
    (lambda t: _set(t, "device", 0, "smart_fridge"), ["expect_column_values_to_be_in_set on device",
                                                      "smart_fridge"]),
    (lambda t: _set(t, "completion_time", 1, -5), ["expect_column_values_to_be_between on completion_time", "-5"]),
    (lambda t: _set(t, "completion_time", 1, 999_999), ["completion_time", "999999"]),
    (lambda t: _set(t, "timestamp", 2, dt.datetime(2024, 1, 11, 3)), ["on timestamp", "2024-01-11 03:00:00"]),
    (lambda t: pa.concat_tables([t, t.slice(0, 2)]), ["expect_column_values_to_be_unique on assessment_id",
                                                      "4 rows fail"]),
    (lambda t: t.drop_columns(["region"]), ["schema matches the DDL", "missing ['region']"]),
    (lambda t: t.append_column("tracking_pixel", pa.array(["x"] * t.num_rows)), ["unexpected ['tracking_pixel']"]),
], ids=["null-id", "unknown-device", "negative-time", "absurd-time", "outside-partition", "duplicates",
        "column-missing", "column-added"])
def test_each_fault_is_caught_with_a_clear_message(one_day_lake, one_day_settings, tmp_path, fault, words):
    _rewrite(one_day_lake, "career", fault)
    report = quality.validate_events(one_day_settings, DAY)
    with pytest.raises(DataQualityError) as caught:
        quality.gate(report)
    message = str(caught.value)
    assert re.match(rf"assessment_events date={FOLDER} failed [12] of {report.evaluated} checks \(\d+ rows\): ",
                    message), message
    for word in words:
        assert word in message, message
    assert "Nothing of this date is built or exported" in message


def test_the_pinned_gx_still_needs_its_duckdb_connection_kept():
    """Guards the private-attribute workaround: if GX renames it, this fails before production."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as gx_sql

    assert isinstance(gx_sql._PERSISTED_CONNECTION_DIALECTS, tuple)
    quality._persist_duckdb_connections(gx_sql)
    assert "duckdb" in gx_sql._PERSISTED_CONNECTION_DIALECTS
