-- Cost table: the workgroup's day: queries, failures, bytes, cost, its baseline, the month to date
-- and the month-end projection against the budget.
-- Written by the cost monitor DAG (ioc_cost_monitor, ioc_analytics.cost.monitor), one partition per day,
-- replaced whole on a re-run. Partition projection is off: each day is registered and replaced by
-- pointing it at a new version folder (ioc_analytics.lake.partitions), like the aggregates.
CREATE EXTERNAL TABLE IF NOT EXISTS daily_costs (
  workgroup string,
  queries bigint,
  failed bigint,
  failure_rate double,
  bytes_scanned bigint,
  cost_usd double,
  max_query_cost_usd double,
  baseline_usd double,
  month_to_date_usd double,
  projected_month_usd double,
  budget_usd double,
  anomalies bigint
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/costs/daily_costs/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/costs/daily_costs/${date}/'
)
