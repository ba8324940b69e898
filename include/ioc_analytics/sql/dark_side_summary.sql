-- dark_side_summary for one day: each derailer over the assessments scored that day.
-- High risk is a score of 70 or more. The day's scores are selected first, so that the scan
-- reads only their row groups.
WITH scored AS (
  SELECT dark_side_indicators
  FROM ocean_scores
  WHERE year = {{ year }} AND month = {{ month }}
    AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ next_day_start }}
)
SELECT
  d.indicator,
  CAST(COUNT(*) AS bigint) AS assessments,
  AVG(d.risk) AS avg_risk,
  CAST(COUNT_IF(d.risk >= 70) AS bigint) AS high_risk_assessments,
  CAST(COUNT_IF(d.risk >= 70) AS double) / COUNT(*) AS high_risk_share
FROM scored s
CROSS JOIN UNNEST(s.dark_side_indicators) AS d(indicator, risk)
GROUP BY d.indicator
ORDER BY d.indicator
