# Sourced by scripts/airflow.sh (`make airflow`) and scripts/demo.sh (`make demo`), after the IOC_*
# settings: where the OpenLineage events of every build, check and export go (docs/lineage.md).
# By default one JSON event a line, appended to $IOC_STATE_DIR/lineage.jsonl; a transport set in
# the environment wins (Marquez: AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "http", "url": ...}', or
# OPENLINEAGE_URL).
if [ -z "${AIRFLOW__OPENLINEAGE__TRANSPORT:-}${OPENLINEAGE_URL:-}" ]; then
  mkdir -p "$IOC_STATE_DIR"
  export AIRFLOW__OPENLINEAGE__TRANSPORT="{\"type\": \"file\", \"log_file_path\": \"$IOC_STATE_DIR/lineage.jsonl\", \"append\": true}"
fi
export AIRFLOW__OPENLINEAGE__NAMESPACE="${AIRFLOW__OPENLINEAGE__NAMESPACE:-ioc}"
