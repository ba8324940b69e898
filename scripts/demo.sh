#!/usr/bin/env bash
# The demo behind `make demo`: a sample lake, setup, the daily DAG for the last 30 days (and the
# January 2024 day the docs' examples read) on the local backend, then the cost monitor over today's
# queries (the DAG's).
# Run it through make (which sets AIRFLOW_HOME and puts the environment on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

export IOC_BACKEND=local
export IOC_LAKE_ROOT="${IOC_LAKE_ROOT:-$PWD/data/lake}"
export IOC_STATE_DIR="${IOC_STATE_DIR:-$PWD/data/state}"
export IOC_EXPORTS_ROOT="${IOC_EXPORTS_ROOT:-$PWD/data/exports}"
# Lineage: a file under $IOC_STATE_DIR unless a transport is set (scripts/lineage.sh).
source scripts/lineage.sh
EVENTS_PER_DAY="${EVENTS_PER_DAY:-20000}"

today=$(python -c 'import datetime as d; print(d.datetime.now(d.UTC).date())')
yesterday=$(python -c 'import datetime as d; print(d.datetime.now(d.UTC).date() - d.timedelta(days=1))')
# The month the demo builds: the last DAYS days, each with its 30-day look-back in the lake.
DAYS="${DAYS:-30}"
first=$(python -c "import datetime as d; print(d.date.fromisoformat('$yesterday') - d.timedelta(days=$DAYS - 1))")
start=$(python -c "import datetime as d; print(d.date.fromisoformat('$first') - d.timedelta(days=30))")
span=$(python -c "import datetime as d; print((d.date.fromisoformat('$yesterday') - d.date.fromisoformat('$start')).days + 1)")

echo "== 1/4 sample lake in $IOC_LAKE_ROOT"
# January 2024 (the month the guide's OCEAN percentile query reads) and the demo's month with its look-back.
ioc generate --start 2024-01-01 --days 31 --events-per-day "$EVENTS_PER_DAY" --seed 7
ioc generate --start "$start" --days "$span" --events-per-day "$EVENTS_PER_DAY" --seed 7

echo "== 2/4 Airflow metadata database in $AIRFLOW_HOME"
mkdir -p data
airflow db migrate > data/airflow-db-migrate.log 2>&1 || { cat data/airflow-db-migrate.log; exit 1; }

echo "== 3/4 ioc setup (the local catalog and guard rails; readiness)"
ioc setup > data/demo-setup.log 2>&1 || { cat data/demo-setup.log; exit 1; }
grep -E "^[0-9]+ resources" data/demo-setup.log || true

echo "== 4/4 the daily DAG for 2024-01-31 and $first to $yesterday (backfills), then the cost monitor"
# Ordinary backfill runs and a manual trigger, done in this one process (see devtools/runs.py):
# `make airflow` shows them as a scheduler's runs, and its scheduler carries on after them.
python -m ioc_analytics.devtools.runs --progress /dev/fd/3 \
  --backfill ioc_daily_analytics 2024-01-31 2024-01-31 \
  --backfill ioc_daily_analytics "$first" "$yesterday" \
  --trigger ioc_cost_monitor 3>&1 > data/demo-runs.log 2>&1 || {
  tail -n 60 data/demo-runs.log; echo "a run failed: the tasks' logs are in data/demo-runs.log"; exit 1; }

cat <<MSG

Done: $DAYS days built and exported, $first to $yesterday, and 2024-01-31. Outputs:
  lake (raw tables)        $IOC_LAKE_ROOT/assessments/, $IOC_LAKE_ROOT/ocean_scores/
  aggregate tables         $IOC_LAKE_ROOT/aggregates/<table>/<yyyy/mm/dd>/ (7 tables a day)
  exports (CSV, Excel,     $IOC_EXPORTS_ROOT/<table>/<yyyy-mm-dd>/manifest.json and the files it lists
    JSON, Parquet)
  data-quality reports     $IOC_LAKE_ROOT/quality/<table>/<yyyy-mm-dd>.json (ioc quality $yesterday)
  dashboard                $IOC_EXPORTS_ROOT/dashboard/$yesterday.html (open it in a browser)
  the state of each day    ioc status $first $yesterday
  partition registry       $IOC_STATE_DIR/catalog.sqlite
  query log                $IOC_STATE_DIR/query_log.jsonl
  cost tables              $IOC_LAKE_ROOT/costs/{query_costs,daily_costs,cost_anomalies}/${today//-//}/
  setup report             $PWD/data/demo-setup.log
  the runs' task logs      $PWD/data/demo-runs.log (\`make airflow\` shows the runs themselves)

Try a query: daily active users over the month, from the aggregate
  IOC_LAKE_ROOT=$IOC_LAKE_ROOT IOC_STATE_DIR=$IOC_STATE_DIR .venv/bin/ioc query \\
    "SELECT date, unique_users, total_sessions FROM daily_active_users
     WHERE date >= '${first//-//}' ORDER BY date"
or what each task's queries cost today:
  IOC_LAKE_ROOT=$IOC_LAKE_ROOT IOC_STATE_DIR=$IOC_STATE_DIR .venv/bin/ioc query \\
    "SELECT task_id, count(*) AS queries, sum(cost_usd) AS usd FROM query_costs
     WHERE date = '${today//-//}' GROUP BY task_id ORDER BY usd DESC"
MSG
