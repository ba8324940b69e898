-- Aggregate: daily active users and sessions, one partition per day (include/ioc_analytics/sql/daily_active_users.sql).
-- Exact counts: the aggregate is the source of truth that the guide's approximate query reads cheaply.
-- Partition projection is off: each date's partition is registered, and replaced by pointing it at
-- a new version folder (ioc_analytics.lake.partitions). The projection.* properties only describe the
-- layout of the partition values; Athena ignores them while projection is disabled.
CREATE EXTERNAL TABLE IF NOT EXISTS daily_active_users (
  unique_users bigint,
  total_sessions bigint,
  completed_sessions bigint,
  returning_users bigint
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/daily_active_users/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/aggregates/daily_active_users/${date}/'
)
