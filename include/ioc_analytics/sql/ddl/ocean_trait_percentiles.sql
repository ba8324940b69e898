-- Aggregate: OCEAN trait percentiles by industry for the month to date, one partition per day
-- (include/ioc_analytics/sql/ocean_trait_percentiles.sql): the partition of a month's last day holds the whole month.
-- Percentiles are nearest-rank over the scores to a tenth of a point, from the month's daily
-- histograms (the score_digest state table): exact for scores with one decimal.
-- Partition projection is off: each date's partition is registered, and replaced by pointing it at
-- a new version folder (ioc_analytics.lake.partitions). The projection.* properties only describe the
-- layout of the partition values; Athena ignores them while projection is disabled.
CREATE EXTERNAL TABLE IF NOT EXISTS ocean_trait_percentiles (
  month string,
  industry string,
  assessments bigint,
  users bigint,
  openness_p25 double,
  openness_p50 double,
  openness_p75 double,
  conscientiousness_p25 double,
  conscientiousness_p50 double,
  conscientiousness_p75 double,
  extraversion_p25 double,
  extraversion_p50 double,
  extraversion_p75 double,
  agreeableness_p25 double,
  agreeableness_p50 double,
  agreeableness_p75 double,
  neuroticism_p25 double,
  neuroticism_p50 double,
  neuroticism_p75 double
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/aggregates/ocean_trait_percentiles/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/aggregates/ocean_trait_percentiles/${date}/'
)
