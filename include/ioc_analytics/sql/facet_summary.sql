-- facet_summary for one day: each of the 30 facets over the assessments scored that day, merged
-- from the day's six four-hour slices (facet_moments), so that no query reads a whole day of
-- facets. Exact: the counts and sums add up, the mean is the slices' weighted mean, and the
-- variance is Chan's pairwise merge of the slices' sums of squared deviations.
WITH slices AS (
  SELECT facet, assessments, scores, mean_score, m2_score, responses, sum_responses
  FROM facet_moments
  WHERE date = {{ lake_date }}
),
day AS (
  SELECT facet, SUM(assessments) AS assessments, SUM(scores) AS scores,
    SUM(mean_score * scores) / NULLIF(SUM(scores), 0) AS mean_score,
    SUM(responses) AS responses, SUM(sum_responses) AS sum_responses
  FROM slices
  GROUP BY facet
)
SELECT
  d.facet,
  split_part(d.facet, '.', 1) AS trait,
  CAST(d.assessments AS bigint) AS assessments,
  d.mean_score AS avg_score,
  CASE WHEN d.scores > 1
    THEN sqrt(SUM(s.m2_score + s.scores * power(s.mean_score - d.mean_score, 2)) / (d.scores - 1)) END
    AS stddev_score,
  d.sum_responses / NULLIF(d.responses, 0) AS avg_responses
FROM day d
JOIN slices s ON s.facet = d.facet
GROUP BY d.facet, d.assessments, d.scores, d.mean_score, d.responses, d.sum_responses
ORDER BY d.facet
