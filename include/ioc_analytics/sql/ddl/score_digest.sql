-- State: each day's trait scores as a histogram by industry: how many score sets had each score,
-- rounded to a tenth of a point (null where the trait is missing), one partition per day, from the
-- day's score sets alone (include/ioc_analytics/sql/state/score_digest.sql). Histograms add up, so
-- ocean_trait_percentiles reads the month to date as the month's days' histograms, not the month's
-- score sets.
-- Partition projection is off: each day is registered and replaced by pointing it at a new version
-- folder (ioc_analytics.lake.partitions), like the aggregates. Each version records, beside its
-- data (_ioc_inputs.json), the source files of every day it derives from; a version whose sources
-- have changed since is re-derived before anything reads it (ioc_analytics.analytics.state).
-- An empty partition is an answer here (no users in the window), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS score_digest (
  industry string,
  trait string,
  score double,
  assessments bigint
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/state/score_digest/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/state/score_digest/${date}/'
)
