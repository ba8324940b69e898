-- Aggregate: the dark-side (derailer) indicators of the day's scored assessments, one partition
-- per day (include/ioc_analytics/sql/dark_side_summary.sql). High risk is a score of 70 or more.
-- Partition projection is off: each date's partition is registered, and replaced by pointing it at
-- a new version folder (ioc_analytics.lake.partitions). The projection.* properties only describe the
-- layout of the partition values; Athena ignores them while projection is disabled.
CREATE EXTERNAL TABLE IF NOT EXISTS dark_side_summary (
  indicator string,
  assessments bigint,
  avg_risk double,
  high_risk_assessments bigint,
  high_risk_share double
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/dark_side_summary/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/aggregates/dark_side_summary/${date}/'
)
