-- score_digest for one day: how many of the day's score sets had each trait score, rounded to a
-- tenth of a point, by industry (a missing trait counts under a null score). One scan, one grouping
-- set per trait.
SELECT
  industry,
  CASE WHEN GROUPING(o) = 0 THEN 'openness' WHEN GROUPING(c) = 0 THEN 'conscientiousness'
       WHEN GROUPING(e) = 0 THEN 'extraversion' WHEN GROUPING(a) = 0 THEN 'agreeableness' ELSE 'neuroticism' END
    AS trait,
  CASE WHEN GROUPING(o) = 0 THEN o WHEN GROUPING(c) = 0 THEN c WHEN GROUPING(e) = 0 THEN e
       WHEN GROUPING(a) = 0 THEN a ELSE n END AS score,
  CAST(COUNT(*) AS bigint) AS assessments
FROM (
  SELECT industry, round(openness, 1) AS o, round(conscientiousness, 1) AS c, round(extraversion, 1) AS e,
    round(agreeableness, 1) AS a, round(neuroticism, 1) AS n
  FROM ocean_scores
  WHERE year = {{ year }} AND month = {{ month }}
    AND "timestamp" >= {{ day_start }} AND "timestamp" < {{ next_day_start }}
) s
GROUP BY GROUPING SETS ((industry, o), (industry, c), (industry, e), (industry, a), (industry, n))
ORDER BY 1, 2, 3
