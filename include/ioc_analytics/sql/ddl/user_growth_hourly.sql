-- Hourly metric (the guide's scheduled Lambda queries), one partition per UTC hour, built by the
-- ioc_hourly_metrics DAG from include/ioc_analytics/sql/hourly/user_growth_hourly.sql. Users active in the hour, the day's users so far, and users new in the hour
-- (no session in the 7 days before the hour's day, nor earlier that day).
-- Partition projection is off: each hour is registered and replaced by pointing it at a new
-- version folder (ioc_analytics.lake.partitions), like the daily aggregates.
CREATE EXTERNAL TABLE IF NOT EXISTS user_growth_hourly (
  active_users bigint,
  sessions bigint,
  new_users bigint,
  users_so_far_today bigint
)
PARTITIONED BY (
  `date` string,
  `hour` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/user_growth_hourly/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '{{ lake_root }}/aggregates/user_growth_hourly/${date}/${hour}/'
)
