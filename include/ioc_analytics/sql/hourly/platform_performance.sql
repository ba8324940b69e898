-- platform_performance for one UTC hour: sessions and completion time by platform and device.
-- Completion times are over completed sessions only (NULL where none completed).
SELECT
  platform,
  device,
  CAST(COUNT(*) AS bigint) AS sessions,
  CAST(COUNT_IF(completion_time > 0) AS bigint) AS completed_sessions,
  CAST(COUNT_IF(completion_time > 0) AS double) / COUNT(*) AS completion_rate,
  AVG(CASE WHEN completion_time > 0 THEN CAST(completion_time AS double) END) AS avg_completion_time_s,
  approx_percentile(CASE WHEN completion_time > 0 THEN CAST(completion_time AS double) END, 0.95)
    AS p95_completion_time_s
FROM assessment_events
WHERE date = {{ lake_date }}
  AND "timestamp" >= {{ hour_start }} AND "timestamp" < {{ next_hour_start }}
GROUP BY platform, device
ORDER BY platform, device
