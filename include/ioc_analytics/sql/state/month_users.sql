-- month_users for one day: the day before's users of the month (none on the month's first day)
-- plus the users of the day's score sets, once per industry they were scored in. Reads the day's
-- score sets and the day before's state, not the month to date of scores. `today` is false for a
-- day without score sets; `previous` is false on the month's first day.
SELECT DISTINCT industry, anonymous_user_id
FROM (
{%- if today %}
  SELECT industry, anonymous_user_id
  FROM ocean_scores
  WHERE year = {{ year }} AND month = {{ month }}
    AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ next_day_start }}
    AND anonymous_user_id IS NOT NULL
{%- endif %}
{%- if today and previous %}
  UNION ALL
{%- endif %}
{%- if previous %}
  SELECT industry, anonymous_user_id
  FROM month_users
  WHERE date = {{ previous_date }}
{%- endif %}
) u
ORDER BY 1, 2
