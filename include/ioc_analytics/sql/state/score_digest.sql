-- score_digest for one day: how many of the day's score sets had each trait score, rounded to a
-- tenth of a point, by industry (a missing trait counts under a null score).
SELECT s.industry, t.trait, t.score, CAST(COUNT(*) AS bigint) AS assessments
FROM ocean_scores s
CROSS JOIN UNNEST(MAP(
  ARRAY['openness', 'conscientiousness', 'extraversion', 'agreeableness', 'neuroticism'],
  ARRAY[round(s.openness, 1), round(s.conscientiousness, 1), round(s.extraversion, 1),
        round(s.agreeableness, 1), round(s.neuroticism, 1)]
)) AS t(trait, score)
WHERE s.year = {{ year }} AND s.month = {{ month }}
  AND s."timestamp" >= {{ day_start }} AND s."timestamp" < {{ next_day_start }}
GROUP BY s.industry, t.trait, t.score
ORDER BY 1, 2, 3
