-- Cost table: each anomaly flagged on the day, with what drove it; `alerted` is false for an
-- anomaly still going on from the day before (its alert went out then).
-- Written by the cost monitor DAG (ioc_cost_monitor, ioc_analytics.cost.monitor), one partition per day,
-- replaced whole on a re-run. Partition projection is off: each day is registered and replaced by
-- pointing it at a new version folder (ioc_analytics.lake.partitions), like the aggregates.
-- An empty partition is an answer here (a day without anomalies), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS cost_anomalies (
  workgroup string,
  kind string,
  alerted boolean,
  value double,
  baseline double,
  threshold double,
  summary string,
  explanation string
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/costs/cost_anomalies/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/costs/cost_anomalies/${date}/'
)
