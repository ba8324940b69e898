-- Completion rates by device and assessment type, per day from start to end.
-- @param start lake_date = today-7
-- @param end lake_date = yesterday
-- @suppress users
SELECT date, device, assessment_type, users, total_sessions, completed_sessions, completion_rate,
  avg_completion_time_s
FROM completion_rates
WHERE date >= {{ start }} AND date <= {{ end }}
ORDER BY date, device, assessment_type
