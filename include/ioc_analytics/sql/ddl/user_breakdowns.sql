-- Aggregate: users, sessions and completion by region, by role and by experience, one partition per
-- day (include/ioc_analytics/sql/user_breakdowns.sql). Each dimension's rows add up to the day's sessions.
-- Partition projection is off: each date's partition is registered, and replaced by pointing it at
-- a new version folder (ioc_analytics.lake.partitions). The projection.* properties only describe the
-- layout of the partition values; Athena ignores them while projection is disabled.
CREATE EXTERNAL TABLE IF NOT EXISTS user_breakdowns (
  dimension string,
  value string,
  users bigint,
  sessions bigint,
  completed_sessions bigint,
  completion_rate double
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/user_breakdowns/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/aggregates/user_breakdowns/${date}/'
)
