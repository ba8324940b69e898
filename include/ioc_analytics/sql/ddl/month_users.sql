-- State: every user with a score set in the month up to a day (ocean_scores), once per industry
-- they were scored in. A chain that starts again each month: a day's partition is the day before's
-- plus the day's users (include/ioc_analytics/sql/state/month_users.sql). ocean_trait_percentiles
-- counts each industry's users of the month to date from it.
-- Partition projection is off: each day is registered and replaced by pointing it at a new version
-- folder (ioc_analytics.lake.partitions), like the aggregates. Each version records, beside its
-- data (_ioc_inputs.json), the source files of every day it derives from; a version whose sources
-- have changed since is re-derived before anything reads it (ioc_analytics.analytics.state).
-- An empty partition is an answer here (no users in the window), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS month_users (
  industry string,
  anonymous_user_id string
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/state/month_users/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/state/month_users/${date}/'
)
