#!/usr/bin/env bash
# The demo behind `make demo`: a sample lake, setup, the daily DAG for yesterday on the local backend,
# then the cost monitor over today's queries (the DAG's).
# Run it through make (which sets AIRFLOW_HOME and puts the environment on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

export IOC_BACKEND=local
export IOC_LAKE_ROOT="${IOC_LAKE_ROOT:-$PWD/data/lake}"
export IOC_STATE_DIR="${IOC_STATE_DIR:-$PWD/data/state}"
export IOC_EXPORTS_ROOT="${IOC_EXPORTS_ROOT:-$PWD/data/exports}"
EVENTS_PER_DAY="${EVENTS_PER_DAY:-20000}"

today=$(python -c 'import datetime as d; print(d.datetime.now(d.UTC).date())')
yesterday=$(python -c 'import datetime as d; print(d.datetime.now(d.UTC).date() - d.timedelta(days=1))')
start=$(python -c "import datetime as d; print(d.date.fromisoformat('$yesterday') - d.timedelta(days=34))")

echo "== 1/5 sample lake in $IOC_LAKE_ROOT"
# January 2024 (the month the guide's OCEAN percentile query reads) and the last 35 days.
ioc generate --lake "$IOC_LAKE_ROOT" --start 2024-01-01 --days 31 --events-per-day "$EVENTS_PER_DAY" --seed 7
ioc generate --lake "$IOC_LAKE_ROOT" --start "$start" --days 35 --events-per-day "$EVENTS_PER_DAY" --seed 7

echo "== 2/5 Airflow metadata database in $AIRFLOW_HOME"
mkdir -p data
airflow db migrate > data/airflow-db-migrate.log 2>&1 || { cat data/airflow-db-migrate.log; exit 1; }

echo "== 3/5 ioc setup (the local catalog and guard rails; readiness)"
ioc setup > data/demo-setup.log 2>&1 || { cat data/demo-setup.log; exit 1; }
grep -E "^[0-9]+ resources" data/demo-setup.log || true

echo "== 4/5 airflow dags test ioc_daily_analytics $yesterday"
airflow dags test ioc_daily_analytics "$yesterday" > data/demo-dag-run.log 2>&1 || {
  tail -n 60 data/demo-dag-run.log; echo "the DAG run failed: full log in data/demo-dag-run.log"; exit 1; }
grep -oE "exported [a-z_]+ for [0-9-]+: [0-9]+ rows" data/demo-dag-run.log || true

echo "== 5/5 airflow dags test ioc_cost_monitor $today (what today's queries cost)"
airflow dags test ioc_cost_monitor "$today" > data/demo-cost-monitor.log 2>&1 || {
  tail -n 60 data/demo-cost-monitor.log; echo "the cost monitor failed: full log in data/demo-cost-monitor.log"; exit 1; }
grep -oE "ioc-analytics on [0-9-]+: [^[]*" data/demo-cost-monitor.log | head -1 || true

cat <<MSG

Done. Outputs:
  lake (raw tables)        $IOC_LAKE_ROOT/assessments/, $IOC_LAKE_ROOT/ocean_scores/
  aggregate tables         $IOC_LAKE_ROOT/aggregates/<table>/${yesterday//-//}/ (7 tables)
  exports (CSV, Excel,     $IOC_EXPORTS_ROOT/<table>/$yesterday/manifest.json and the files it lists
    JSON, Parquet)
  data-quality reports     $IOC_LAKE_ROOT/quality/<table>/$yesterday.json (ioc quality $yesterday)
  dashboard                $IOC_EXPORTS_ROOT/dashboard/$yesterday.html (open it in a browser)
  partition registry       $IOC_STATE_DIR/catalog.sqlite
  query log                $IOC_STATE_DIR/query_log.jsonl
  cost tables              $IOC_LAKE_ROOT/costs/{query_costs,daily_costs,cost_anomalies}/${today//-//}/
  setup report             $PWD/data/demo-setup.log
  DAG run logs             $PWD/data/demo-dag-run.log, $PWD/data/demo-cost-monitor.log

Try a query: the day's completion rates, from the aggregate
  IOC_LAKE_ROOT=$IOC_LAKE_ROOT IOC_STATE_DIR=$IOC_STATE_DIR .venv/bin/ioc query \\
    "SELECT device, assessment_type, total_sessions, completion_rate FROM completion_rates
     WHERE date = '${yesterday//-//}' ORDER BY completion_rate"
or what each task's queries cost today:
  IOC_LAKE_ROOT=$IOC_LAKE_ROOT IOC_STATE_DIR=$IOC_STATE_DIR .venv/bin/ioc query \\
    "SELECT task_id, count(*) AS queries, sum(cost_usd) AS usd FROM query_costs
     WHERE date = '${today//-//}' GROUP BY task_id ORDER BY usd DESC"
MSG
