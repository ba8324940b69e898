-- facet_moments for four hours of one day (a slice): per facet, over the score sets written in
-- those hours, the count of assessments, of scores and of responses, the mean of the scores, their
-- sum of squared deviations from it, and the sum of the responses. facet_summary merges a day's
-- slices. The slice's score sets are selected first, so that the scan reads only their row groups.
WITH scored AS (
  SELECT facets
  FROM ocean_scores
  WHERE year = {{ year }} AND month = {{ month }}
    AND "timestamp" >= {{ slice_start }} AND "timestamp" < {{ slice_end }}
)
SELECT
  f.facet,
  CAST(COUNT(*) AS bigint) AS assessments,
  CAST(COUNT(f.detail.score) AS bigint) AS scores,
  AVG(f.detail.score) AS mean_score,
  COALESCE(VAR_SAMP(f.detail.score) * (COUNT(f.detail.score) - 1), 0) AS m2_score,
  CAST(COUNT(f.detail.responses) AS bigint) AS responses,
  CAST(SUM(f.detail.responses) AS double) AS sum_responses
FROM scored s
CROSS JOIN UNNEST(s.facets) AS f(facet, detail)
GROUP BY f.facet
ORDER BY f.facet
