-- Hourly metric (the guide's scheduled Lambda queries), one partition per UTC hour, built by the
-- ioc_hourly_metrics DAG from include/ioc_analytics/sql/hourly/platform_performance.sql. Sessions, completion and completion time by platform and device in the hour.
-- Partition projection is off: each hour is registered and replaced by pointing it at a new
-- version folder (ioc_analytics.lake.partitions), like the daily aggregates.
-- An empty partition is an answer here (an hour without sessions), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS platform_performance (
  platform string,
  device string,
  sessions bigint,
  completed_sessions bigint,
  completion_rate double,
  avg_completion_time_s double,
  p95_completion_time_s double
)
PARTITIONED BY (
  `date` string,
  `hour` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/platform_performance/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '{{ lake_root }}/aggregates/platform_performance/${date}/${hour}/'
)
