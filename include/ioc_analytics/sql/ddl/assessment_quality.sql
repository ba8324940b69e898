-- Hourly metric (the guide's scheduled Lambda queries), one partition per UTC hour, built by the
-- ioc_hourly_metrics DAG from include/ioc_analytics/sql/hourly/assessment_quality.sql. By assessment type: the hour's completed sessions, the score sets among
-- them, their mean consistency and completeness, and how many are reliable (consistency >= 0.7,
-- completeness >= 0.9, as assessment_funnel counts them).
-- Partition projection is off: each hour is registered and replaced by pointing it at a new
-- version folder (ioc_analytics.lake.partitions), like the daily aggregates.
-- An empty partition is an answer here (an hour without completed sessions), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS assessment_quality (
  assessment_type string,
  completed_sessions bigint,
  scored bigint,
  avg_consistency double,
  avg_completeness double,
  reliable bigint
)
PARTITIONED BY (
  `date` string,
  `hour` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/assessment_quality/'
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
  'storage.location.template' = '{{ lake_root }}/aggregates/assessment_quality/${date}/${hour}/'
)
