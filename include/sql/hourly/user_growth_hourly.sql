-- user_growth_hourly for one UTC hour. Reads the hour's day and the 7 days before it (user ids and
-- timestamps only): a user is new in the hour when this is their first session in that span.
WITH sessions AS (
  SELECT anonymous_user_id, "timestamp"
  FROM assessment_events
  WHERE date >= {{ week_before }} AND date <= {{ lake_date }}
    AND "timestamp" < {{ next_hour_start }}
),
firsts AS (
  SELECT anonymous_user_id, MIN("timestamp") AS first_seen
  FROM sessions
  GROUP BY anonymous_user_id
)
SELECT
  CAST(COUNT(DISTINCT CASE WHEN s."timestamp" >= {{ hour_start }} THEN s.anonymous_user_id END) AS bigint)
    AS active_users,
  CAST(COUNT_IF(s."timestamp" >= {{ hour_start }}) AS bigint) AS sessions,
  CAST(COUNT(DISTINCT CASE WHEN f.first_seen >= {{ hour_start }} THEN f.anonymous_user_id END) AS bigint)
    AS new_users,
  CAST(COUNT(DISTINCT CASE WHEN s."timestamp" >= {{ day_start }} THEN s.anonymous_user_id END) AS bigint)
    AS users_so_far_today
FROM sessions s
JOIN firsts f ON f.anonymous_user_id = s.anonymous_user_id
