-- user_breakdowns for one day: users, sessions and completion by region, by role and by
-- experience, in one scan (grouping sets). Sessions without the attribute have value NULL.
SELECT
  CASE WHEN GROUPING(region) = 0 THEN 'region' WHEN GROUPING(role) = 0 THEN 'role' ELSE 'experience' END
    AS dimension,
  CASE WHEN GROUPING(region) = 0 THEN region WHEN GROUPING(role) = 0 THEN role ELSE experience END AS value,
  CAST(COUNT(DISTINCT anonymous_user_id) AS bigint) AS users,
  CAST(COUNT(*) AS bigint) AS sessions,
  CAST(COUNT_IF(completion_time > 0) AS bigint) AS completed_sessions,
  CAST(COUNT_IF(completion_time > 0) AS double) / COUNT(*) AS completion_rate
FROM assessment_events
WHERE date = {{ lake_date }}
GROUP BY GROUPING SETS ((region), (role), (experience))
ORDER BY dimension, value
