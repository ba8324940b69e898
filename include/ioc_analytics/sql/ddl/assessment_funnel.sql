-- Aggregate: the start-to-completion funnel by assessment type, one partition per day
-- (include/ioc_analytics/sql/assessment_funnel.sql): started >= completed >= scored >= reliable.
-- Partition projection is off: each date's partition is registered, and replaced by pointing it at
-- a new version folder (ioc_analytics.lake.partitions). The projection.* properties only describe the
-- layout of the partition values; Athena ignores them while projection is disabled.
CREATE EXTERNAL TABLE IF NOT EXISTS assessment_funnel (
  assessment_type string,
  users bigint,
  started bigint,
  completed bigint,
  scored bigint,
  reliable bigint
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/assessment_funnel/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/aggregates/assessment_funnel/${date}/'
)
