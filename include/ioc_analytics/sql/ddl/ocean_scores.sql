-- OCEAN (Big Five) scores: one row per completed assessment. Traits on 0-100; facets hold the six
-- facets of each trait keyed '<trait>.<facet>'; dark_side_indicators hold the eleven derailer
-- risks on 0-100 (see include/ioc_analytics/lake/contract.py for the vocabulary).
-- Objects: {lake_root}/ocean_scores/YYYY/MM/*.parquet
CREATE EXTERNAL TABLE IF NOT EXISTS ocean_scores (
  anonymous_user_id string,
  assessment_id string,
  `timestamp` timestamp,
  openness double,
  conscientiousness double,
  extraversion double,
  agreeableness double,
  neuroticism double,
  consistency double,
  completeness double,
  facets map<string, struct<score: double, responses: int, std_dev: double>>,
  dark_side_indicators map<string, double>,
  industry string,
  role string,
  experience string
)
PARTITIONED BY (
  year string,
  month string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/ocean_scores/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'true',
  'projection.year.type' = 'integer',
  'projection.year.range' = '2024,2040',
  'projection.year.digits' = '4',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'storage.location.template' = '{{ lake_root }}/ocean_scores/${year}/${month}/'
)
