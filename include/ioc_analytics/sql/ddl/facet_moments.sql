-- State: the facets of the score sets written in four hours of a day (a slice, named by its first
-- hour): per facet, the count, mean and sum of squared deviations of the scores and the sum of the
-- responses, from which facet_summary merges the day exactly (Chan's pairwise formula). A day's
-- facets are read four hours at a time so that no query reads a whole day of them
-- (include/ioc_analytics/sql/state/facet_moments.sql).
-- Partition projection is off: each day is registered and replaced by pointing it at a new version
-- folder (ioc_analytics.lake.partitions), like the aggregates. Each version records, beside its
-- data (_ioc_inputs.json), the source files of every day it derives from; a version whose sources
-- have changed since is re-derived before anything reads it (ioc_analytics.analytics.state).
-- An empty partition is an answer here (no users in the window), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS facet_moments (
  facet string,
  assessments bigint,
  scores bigint,
  mean_score double,
  m2_score double,
  responses bigint,
  sum_responses double
)
PARTITIONED BY (
  `date` string,
  `hour` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/state/facet_moments/'
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
  'projection.hour.range' = '0,20',
  'projection.hour.interval' = '4',
  'projection.hour.digits' = '2',
  'storage.location.template' = '{{ lake_root }}/state/facet_moments/${date}/${hour}/'
)
