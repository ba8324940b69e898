-- completion_rates for one day: sessions and completion by device and assessment type.
-- avg_completion_time_s is over completed sessions only (NULL where none completed).
SELECT
  device,
  assessment_type,
  CAST(COUNT(DISTINCT anonymous_user_id) AS bigint) AS users,
  CAST(COUNT(*) AS bigint) AS total_sessions,
  CAST(COUNT_IF(completion_time > 0) AS bigint) AS completed_sessions,
  CAST(COUNT_IF(completion_time > 0) AS double) / COUNT(*) AS completion_rate,
  AVG(CASE WHEN completion_time > 0 THEN CAST(completion_time AS double) END) AS avg_completion_time_s
FROM assessment_events
WHERE date = {{ lake_date }}
GROUP BY device, assessment_type
ORDER BY device, assessment_type
