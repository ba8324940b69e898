-- daily_active_users for one day: the row of the date's partition.
-- Exact counts; returning users are those also active on one of the 30 days before.
-- Reads only the day's partitions of assessment_events, and anonymous_user_id for the look-back.
SELECT
  CAST(COUNT(DISTINCT e.anonymous_user_id) AS bigint) AS unique_users,
  CAST(COUNT(*) AS bigint) AS total_sessions,
  CAST(COUNT_IF(e.completion_time > 0) AS bigint) AS completed_sessions,
  CAST(COUNT(DISTINCT CASE WHEN p.anonymous_user_id IS NOT NULL THEN e.anonymous_user_id END) AS bigint)
    AS returning_users
FROM assessment_events e
LEFT JOIN (
  SELECT DISTINCT anonymous_user_id
  FROM assessment_events
  WHERE date >= {{ lookback_start }} AND date < {{ lake_date }}
) p ON e.anonymous_user_id = p.anonymous_user_id
WHERE e.date = {{ lake_date }}
