-- facet_summary for one day: each of the 30 facets over the assessments scored that day.
SELECT
  f.facet,
  split_part(f.facet, '.', 1) AS trait,
  CAST(COUNT(*) AS bigint) AS assessments,
  AVG(f.detail.score) AS avg_score,
  STDDEV_SAMP(f.detail.score) AS stddev_score,
  AVG(CAST(f.detail.responses AS double)) AS avg_responses
FROM ocean_scores s
CROSS JOIN UNNEST(s.facets) AS f(facet, detail)
WHERE s.year = {{ year }} AND s.month = {{ month }}
  AND s."timestamp" >= {{ day_start }} AND s."timestamp" < {{ next_day_start }}
GROUP BY f.facet
ORDER BY f.facet
