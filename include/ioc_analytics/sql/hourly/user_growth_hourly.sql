-- user_growth_hourly for one UTC hour. Reads the hour's day and the 7 days before it (user ids and
-- timestamps only): a user is new in the hour when this is their first session in that span.
-- (Values are bound in WHERE clauses only, as Athena requires: hence a CTE per measure.)
WITH sessions AS (
  SELECT anonymous_user_id, "timestamp"
  FROM assessment_events
  WHERE date >= {{ week_before }} AND date <= {{ lake_date }}
    AND "timestamp" < {{ next_hour_start }}
),
in_hour AS (
  SELECT anonymous_user_id FROM sessions WHERE "timestamp" >= {{ hour_start }}
),
today AS (
  SELECT DISTINCT anonymous_user_id FROM sessions WHERE "timestamp" >= {{ day_start }}
),
firsts AS (
  SELECT anonymous_user_id, MIN("timestamp") AS first_seen FROM sessions GROUP BY anonymous_user_id
),
new_in_hour AS (
  SELECT anonymous_user_id FROM firsts WHERE first_seen >= {{ hour_start }}
)
SELECT
  (SELECT CAST(COUNT(DISTINCT anonymous_user_id) AS bigint) FROM in_hour) AS active_users,
  (SELECT CAST(COUNT(*) AS bigint) FROM in_hour) AS sessions,
  (SELECT CAST(COUNT(*) AS bigint) FROM new_in_hour) AS new_users,
  (SELECT CAST(COUNT(*) AS bigint) FROM today) AS users_so_far_today
