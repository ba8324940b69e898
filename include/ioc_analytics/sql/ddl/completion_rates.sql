-- Aggregate: sessions and completion by device and assessment type, one partition per day
-- (include/ioc_analytics/sql/completion_rates.sql). A session is completed when completion_time > 0.
-- Partition projection is off: each date's partition is registered, and replaced by pointing it at
-- a new version folder (ioc_analytics.lake.partitions). The projection.* properties only describe the
-- layout of the partition values; Athena ignores them while projection is disabled.
CREATE EXTERNAL TABLE IF NOT EXISTS completion_rates (
  device string,
  assessment_type string,
  users bigint,
  total_sessions bigint,
  completed_sessions bigint,
  completion_rate double,
  avg_completion_time_s double
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/completion_rates/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/aggregates/completion_rates/${date}/'
)
