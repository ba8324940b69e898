"""``ioc`` as a user runs it: real processes, real lake, one clear line per error."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import read_events

IOC = str(Path(sys.executable).parent / "ioc")


def run_ioc(*args: str, lake: Path, state: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "IOC_BACKEND": "local", "IOC_LAKE_ROOT": str(lake), "IOC_STATE_DIR": str(state)}
    return subprocess.run([IOC, *args], capture_output=True, text=True, env=env, input=stdin, timeout=120)


def test_query_csv_reports_bytes_and_cost(sample_lake, tmp_path):
    out = run_ioc("query", "--format", "csv",
                  "SELECT assessment_type, COUNT(*) AS n FROM assessment_events "
                  "WHERE date = '2024/01/15' GROUP BY assessment_type ORDER BY assessment_type",
                  lake=sample_lake, state=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    events = read_events(sample_lake)
    expected = events[events["date"] == "2024/01/15"].groupby("assessment_type").size()
    assert {r["assessment_type"]: int(r["n"]) for r in rows} == expected.to_dict()
    assert "MB scanned" in out.stderr and "$" in out.stderr


def test_query_json_from_stdin(sample_lake, tmp_path):
    out = run_ioc("query", "--format", "json", "-", lake=sample_lake, state=tmp_path,
                  stdin="SELECT COUNT(*) AS n FROM ocean_scores WHERE year = '2024' AND month = '01'")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["n"] > 0


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM nope", "table 'nope' does not exist"),
        ("SELECT nope FROM assessment_events WHERE date = '2024/01/15'", 'column "nope" not found'),
        ("SELEC 1", "syntax error"),
        ("SELECT COUNT(*) FROM assessment_events WHERE date = '2023/01/01'", "no partitions matching"),
        ("", "no SQL given"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(sample_lake, tmp_path, sql, message):
    out = run_ioc("query", sql, lake=sample_lake, state=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_missing_lake_is_explained(tmp_path):
    out = run_ioc("query", "SELECT 1 FROM assessment_events", lake=tmp_path / "missing", state=tmp_path)
    assert out.returncode == 2 and "does not exist" in out.stderr and "ioc generate" in out.stderr


def test_bad_backend_is_explained(sample_lake, tmp_path):
    env = {**os.environ, "IOC_BACKEND": "gcp", "IOC_LAKE_ROOT": str(sample_lake)}
    out = subprocess.run([IOC, "query", "SELECT 1"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "IOC_BACKEND='gcp' is not a backend" in out.stderr


def test_a_bad_quarantine_setting_is_explained(sample_lake, tmp_path):
    env = {**os.environ, "IOC_QUARANTINE": "maybe", "IOC_LAKE_ROOT": str(sample_lake)}
    out = subprocess.run([IOC, "quality", "2024-01-10"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr == "error: IOC_QUARANTINE='maybe' must be true or false\n"


@pytest.mark.parametrize(("typed", "said"), [
    ("2024-13-01", "'2024-13-01' is not a day of the calendar (a month from 01 to 12, a day that the month has)"),
    ("2024/02/30", "'2024/02/30' is not a day of the calendar"),
    ("15/01/2024", "'15/01/2024' is not a date: type it as YYYY-MM-DD (or YYYY/MM/DD)"),
    ("2024-1-5", "'2024-1-5' is not a date: type it as YYYY-MM-DD (or YYYY/MM/DD)")])
def test_generate_rejects_a_bad_date(tmp_path, typed, said):
    out = run_ioc("generate", "--lake", str(tmp_path), "--start", typed, lake=tmp_path, state=tmp_path)
    assert out.returncode == 2 and said in out.stderr, out.stderr


def test_generate_and_fault_write_the_configured_lake_and_take_either_date_spelling(tmp_path):
    lake = tmp_path / "configured"
    made = run_ioc("generate", "--start", "2024/02/28", "--days", "2", "--events-per-day", "50",
                   lake=lake, state=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "for 2 days to" in made.stdout and str(lake) in made.stdout
    assert sorted(p.name for p in (lake / "assessments" / "2024" / "02").iterdir()) == ["28", "29"]
    damaged = run_ioc("fault", "--date", "2024-02-29", "--fault", "null-id", lake=lake, state=tmp_path)
    assert damaged.returncode == 0, damaged.stderr
    assert str(lake / "assessments" / "2024" / "02" / "29" / "personality") in damaged.stdout
    one = run_ioc("generate", "--start", "2024-03-01", "--events-per-day", "50", lake=lake, state=tmp_path)
    assert "for 1 day to" in one.stdout, one.stdout


@pytest.mark.parametrize("command", ["generate", "query", "tables", "quality", "fault", "quicksight", "costguard",
                                     "setup", "recover", "contract"])
def test_every_subcommand_explains_itself_with_its_defaults_and_an_example(command, tmp_path):
    out = run_ioc(command, "--help", lake=tmp_path, state=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"example:\n  ioc {command}" in text or "example:\n  IOC_BACKEND=aws" in text, text
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 3, text  # a sentence saying what it does, not just the usage
    options = [line for line in text.splitlines() if line.startswith("  --") and not line.startswith("  -h")]
    for line in options:  # every option says what it is (on its line or the next)
        assert len(line.split()) > 2 or text.splitlines()[text.splitlines().index(line) + 1].startswith(" " * 10), line


def test_generate_help_names_its_defaults():
    from ioc_analytics.cli import _parser

    text = _parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert "(default: 10000)" in text and "(default: 42)" in text and "IOC_LAKE_ROOT" in text


def test_generate_into_a_place_that_cannot_be_a_folder(tmp_path):
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "lake"
    out = run_ioc("generate", "--lake", str(target), "--start", "2024-01-01", "--days", "1",
                  lake=tmp_path, state=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Not a directory" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_a_lake_root_that_is_a_file_is_explained(tmp_path):
    (tmp_path / "lake.txt").write_text("")
    out = run_ioc("query", "SELECT 1 FROM assessment_events", lake=tmp_path / "lake.txt", state=tmp_path)
    assert out.returncode == 2 and "is a file, not a folder" in out.stderr, out.stderr


def test_aws_without_credentials_is_one_error_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"IOC_BACKEND": "aws", "IOC_LAKE_ROOT": "s3://ioc-test-lake", "IOC_STATE_DIR": str(tmp_path),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    out = subprocess.run([IOC, "query", "SELECT 1"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "error: AWS: Unable to locate credentials" in out.stderr, out.stderr[-2000:]
    assert "IOC_AWS_CONN_ID" in out.stderr and "Traceback" not in out.stderr


def test_tables_lists_the_catalog(tmp_path):
    out = run_ioc("tables", lake=tmp_path, state=tmp_path)
    assert out.returncode == 0
    assert "ioc_analytics.assessment_events" in out.stdout and "assessment_type" in out.stdout
    assert "facets                   map<string,struct<score:double" in out.stdout.lower()


def test_quality_validates_shows_and_fails_on_a_fault(one_day_lake, tmp_path):
    from tests.helpers import ONE_DAY

    none = run_ioc("quality", ONE_DAY.isoformat(), lake=one_day_lake, state=tmp_path)
    assert none.returncode == 1 and "no data-quality reports for this date" in none.stdout
    nowhere = run_ioc("quality", ONE_DAY.strftime("%Y/%m/%d"), lake=tmp_path / "no-lake", state=tmp_path)
    assert nowhere.returncode == 2 and "the lake folder" in nowhere.stderr and "does not exist" in nowhere.stderr

    good = run_ioc("quality", ONE_DAY.isoformat(), "--validate", lake=one_day_lake, state=tmp_path)
    assert good.returncode == 0, good.stderr
    assert [line.split()[:2] for line in good.stdout.splitlines()] == [
        ["assessment_events", "PASSED"], ["ocean_scores", "PASSED"]]

    damaged = run_ioc("fault", "--lake", str(one_day_lake), "--date", ONE_DAY.isoformat(), "--fault",
                      "unknown-device", "--assessment-type", "career", lake=one_day_lake, state=tmp_path)
    assert damaged.returncode == 0 and "career/part-00000.parquet with unknown-device" in damaged.stdout
    bad = run_ioc("quality", ONE_DAY.isoformat(), "--validate", lake=one_day_lake, state=tmp_path)
    assert bad.returncode == 1 and "assessment_events          FAILED" in bad.stdout
    assert "error       [date=2024/01/10, assessment_type=career] device: unknown label, 1 row, for example " \
           "['smart_fridge'] (device is one of desktop, mobile, tablet)" in bad.stdout


def test_fault_on_a_day_that_was_not_generated_is_one_error_line(tmp_path):
    out = run_ioc("fault", "--lake", str(tmp_path), "--date", "2024-03-01", "--fault", "null-id",
                  lake=tmp_path, state=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.splitlines()) == 1
    assert "part-00000.parquet does not exist: generate 2024-03-01 first" in out.stderr


def test_quicksight_on_the_local_backend_is_one_error_line(sample_lake, tmp_path):
    out = run_ioc("quicksight", lake=sample_lake, state=tmp_path)
    assert out.returncode == 2 and out.stderr == (
        "error: QuickSight is the aws backend's; set IOC_BACKEND=aws (local has the static dashboard)\n")
