-- user_activity for one day: the day before's users (each user active in the 30 days before the
-- day) less those last active 30 days before it, plus the day's users, with the day they were last
-- active and, for the day's users, the day before it they were last active (null if none in the 30
-- days before). Reads the day's user ids and the day before's state, not 30 days of events.
-- `today` is false for a day without events; `previous` is false where the chain starts (the
-- state then holds only the days since).
WITH
{%- if today %}
today AS (
  SELECT anonymous_user_id, MAX(date) AS day
  FROM assessment_events
  WHERE date = {{ lake_date }} AND anonymous_user_id IS NOT NULL
  GROUP BY anonymous_user_id
){% if previous %},{% endif %}
{%- endif %}
{%- if previous %}
before AS (
  SELECT anonymous_user_id, last_active
  FROM user_activity
  WHERE date = {{ previous_date }}
)
{%- endif %}
SELECT
{%- if today and previous %}
  COALESCE(t.anonymous_user_id, b.anonymous_user_id) AS anonymous_user_id,
  COALESCE(t.day, b.last_active) AS last_active,
  CASE WHEN t.day IS NOT NULL THEN b.last_active END AS previous_active
FROM today t
FULL OUTER JOIN before b ON t.anonymous_user_id = b.anonymous_user_id
WHERE t.day IS NOT NULL OR b.last_active >= {{ rolling_start }}
{%- elif today %}
  anonymous_user_id,
  day AS last_active,
  CAST(NULL AS varchar) AS previous_active
FROM today
{%- else %}
  anonymous_user_id,
  last_active,
  CAST(NULL AS varchar) AS previous_active
FROM before
WHERE last_active >= {{ rolling_start }}
{%- endif %}
ORDER BY 2 DESC, 1
