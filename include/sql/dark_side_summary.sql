-- dark_side_summary for one day: each derailer over the assessments scored that day.
-- High risk is a score of 70 or more.
SELECT
  d.indicator,
  CAST(COUNT(*) AS bigint) AS assessments,
  AVG(d.risk) AS avg_risk,
  CAST(COUNT_IF(d.risk >= 70) AS bigint) AS high_risk_assessments,
  CAST(COUNT_IF(d.risk >= 70) AS double) / COUNT(*) AS high_risk_share
FROM ocean_scores s
CROSS JOIN UNNEST(s.dark_side_indicators) AS d(indicator, risk)
WHERE s.year = {{ year }} AND s.month = {{ month }}
  AND s."timestamp" >= {{ day_start }} AND s."timestamp" < {{ next_day_start }}
GROUP BY d.indicator
ORDER BY d.indicator
