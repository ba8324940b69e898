-- Raw assessment events: one row per assessment session (started, and completed when
-- completion_time > 0). assessment_type is a partition key only: the guide repeated it as a
-- column, which Hive and Athena refuse.
-- Objects: {lake_root}/assessments/YYYY/MM/DD/<assessment_type>/*.parquet
CREATE EXTERNAL TABLE IF NOT EXISTS assessment_events (
  anonymous_user_id string,
  session_id string,
  assessment_id string,
  `timestamp` timestamp,
  version string,
  completion_time int,
  device string,
  platform string,
  age_range string,
  industry string,
  role string,
  experience string,
  region string
)
PARTITIONED BY (
  `date` string,
  assessment_type string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/assessments/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'projection.enabled' = 'true',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'projection.assessment_type.type' = 'enum',
  'projection.assessment_type.values' = 'personality,personality_quick,leadership,team_dynamics,career',
  'storage.location.template' = '{{ lake_root }}/assessments/${date}/${assessment_type}/'
)
