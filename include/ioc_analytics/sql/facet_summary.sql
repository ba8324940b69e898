-- facet_summary for one day: each of the 30 facets over the assessments scored that day.
-- The day's scores are selected first, so that the scan reads only their row groups.
WITH scored AS (
  SELECT facets
  FROM ocean_scores
  WHERE year = {{ year }} AND month = {{ month }}
    AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ next_day_start }}
)
SELECT
  f.facet,
  split_part(f.facet, '.', 1) AS trait,
  CAST(COUNT(*) AS bigint) AS assessments,
  AVG(f.detail.score) AS avg_score,
  STDDEV_SAMP(f.detail.score) AS stddev_score,
  AVG(CAST(f.detail.responses AS double)) AS avg_responses
FROM scored s
CROSS JOIN UNNEST(s.facets) AS f(facet, detail)
GROUP BY f.facet
ORDER BY f.facet
