#!/usr/bin/env bash
# `make airflow`: Airflow 3 on this machine, no Docker: `airflow standalone` runs the API server
# (UI and REST API), the scheduler, the DAG processor and the triggerer, on SQLite with the
# LocalExecutor, over the local backend (the demo's lake by default). Stop it with Ctrl-C.
#
# Every setting can be overridden from the environment (the end-to-end test does so):
#   AIRFLOW_HOME (./airflow_home), AIRFLOW_PORT (8080), IOC_LAKE_ROOT, IOC_STATE_DIR, IOC_EXPORTS_ROOT.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${AIRFLOW_PORT:-8080}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$PWD/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$PWD/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Standalone forks one worker per parallel task: 4 suits a 2-core machine (32 by default).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__PORT="$port"
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://localhost:$port}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:$port/execution/"
export IOC_BACKEND="${IOC_BACKEND:-local}"
export IOC_LAKE_ROOT="${IOC_LAKE_ROOT:-$PWD/data/lake}"
export IOC_STATE_DIR="${IOC_STATE_DIR:-$PWD/data/state}"
export IOC_EXPORTS_ROOT="${IOC_EXPORTS_ROOT:-$PWD/data/exports}"
# Lineage: a file under $IOC_STATE_DIR unless a transport is set (scripts/lineage.sh).
source scripts/lineage.sh

command -v airflow > /dev/null || { echo "airflow is not on PATH: run this through \`make airflow\`" >&2; exit 2; }
echo "Airflow UI and REST API: http://localhost:$port (user admin; the password is printed below and kept in"
echo "  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated). Lake: $IOC_LAKE_ROOT. Ctrl-C stops every part."
# Ctrl-C interrupts every process of the terminal's foreground group at once, and standalone,
# interrupted together with its parts, never finishes stopping (it waits on children already
# gone). So it runs in a process group of its own (job control on), and this script hands it the
# one SIGINT on which it stops each of its parts in turn, then waits for it.
set -m
airflow standalone &
standalone=$!
trap 'kill -INT "$standalone" 2> /dev/null' INT TERM
status=0
while kill -0 "$standalone" 2> /dev/null; do
  wait "$standalone" || status=$?
done
exit "$status"
