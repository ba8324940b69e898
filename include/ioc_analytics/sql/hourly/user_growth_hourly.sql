-- user_growth_hourly for one UTC hour. Reads the hour's day up to the hour's end (user ids and
-- timestamps only), and, for the 7 days before, the day before's user_activity (the users active in
-- the 30 days before the day, with the day they were last active), not 7 days of events: a user is
-- new in the hour when this is their first session of the day and they were not active in the 7 days
-- before it. (Values are bound in WHERE clauses only, as Athena requires: hence a CTE per measure.)
WITH sessions AS (
  SELECT anonymous_user_id, "timestamp"
  FROM assessment_events
  WHERE date = {{ lake_date }} AND "timestamp" < {{ next_hour_start }}
),
in_hour AS (
  SELECT anonymous_user_id FROM sessions WHERE "timestamp" >= {{ hour_start }}
),
firsts AS (
  SELECT anonymous_user_id, MIN("timestamp") AS first_seen
  FROM sessions
  WHERE anonymous_user_id IS NOT NULL
  GROUP BY anonymous_user_id
),
week AS (
  SELECT anonymous_user_id
  FROM user_activity
  WHERE date = {{ previous_date }} AND last_active >= {{ week_before }}
),
new_in_hour AS (
  SELECT f.anonymous_user_id
  FROM firsts f
  LEFT JOIN week w ON w.anonymous_user_id = f.anonymous_user_id
  WHERE f.first_seen >= {{ hour_start }} AND w.anonymous_user_id IS NULL
)
SELECT
  (SELECT CAST(COUNT(DISTINCT anonymous_user_id) AS bigint) FROM in_hour) AS active_users,
  (SELECT CAST(COUNT(*) AS bigint) FROM in_hour) AS sessions,
  (SELECT CAST(COUNT(*) AS bigint) FROM new_in_hour) AS new_users,
  (SELECT CAST(COUNT(*) AS bigint) FROM firsts) AS users_so_far_today
