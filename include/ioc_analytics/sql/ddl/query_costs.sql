-- Cost table: every query of the day in the workgroup, with its cost at Athena's price, who ran it
-- (the ioc-tags comment) and why it was expensive (the SQL analysed by ioc_analytics.cost.guard).
-- Written by the cost monitor DAG (ioc_cost_monitor, ioc_analytics.cost.monitor), one partition per day,
-- replaced whole on a re-run. Partition projection is off: each day is registered and replaced by
-- pointing it at a new version folder (ioc_analytics.lake.partitions), like the aggregates.
-- An empty partition is an answer here (a day without queries), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS query_costs (
  query_id string,
  workgroup string,
  submitted_at timestamp,
  state string,
  bytes_scanned bigint,
  engine_ms bigint,
  cost_usd double,
  run_by string,
  dag_id string,
  task_id string,
  run_id string,
  ds string,
  reasons string,
  error string,
  query string
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/costs/query_costs/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/costs/query_costs/${date}/'
)
