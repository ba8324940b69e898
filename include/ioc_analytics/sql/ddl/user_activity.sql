-- State: every user active in the 30 days up to a day (assessment_events), with the day they were
-- last active and, for those active on the day itself, the day they were active before it within
-- the 30 days before (null for a user new in those 30 days). A chain: each day's partition is the
-- day before's, less the users last active 30 days ago, plus the day's users
-- (include/ioc_analytics/sql/state/user_activity.sql). daily_active_users counts its day's users and
-- returning users from it; user_growth_hourly finds the users active in the 7 days before a day in
-- the day before's. Written sorted by last_active, newest first, so that a reader of the recent days
-- reads only their row groups.
-- Partition projection is off: each day is registered and replaced by pointing it at a new version
-- folder (ioc_analytics.lake.partitions), like the aggregates. Each version records, beside its
-- data (_ioc_inputs.json), the source files of every day it derives from; a version whose sources
-- have changed since is re-derived before anything reads it (ioc_analytics.analytics.state).
-- An empty partition is an answer here (no users in the window), not missing data: 'ioc.empty_partitions'.
CREATE EXTERNAL TABLE IF NOT EXISTS user_activity (
  anonymous_user_id string,
  last_active string,
  previous_active string
)
PARTITIONED BY (
  `date` string
)
STORED AS PARQUET
LOCATION '{{ lake_root }}/state/user_activity/'
TBLPROPERTIES (
  'parquet.compression' = 'SNAPPY',
  'ioc.empty_partitions' = 'allowed',
  'projection.enabled' = 'false',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy/MM/dd',
  'projection.date.range' = '2024/01/01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = '{{ lake_root }}/state/user_activity/${date}/'
)
