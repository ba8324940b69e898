-- The guide's activation criterion "10,000+ assessments per month" (ioc setup's readiness report):
-- the assessments of the 30 complete days before the day setup runs (that day is still filling).
SELECT COUNT(*) AS assessments
FROM assessment_events
WHERE date >= {{ lookback_start }} AND date < {{ lake_date }}
