-- The export of one day's partition of an aggregate table: every column, the date last. The
-- table name is checked against the catalog before it is placed here (it cannot be bound).
SELECT *
FROM {{ table }}
WHERE date = {{ lake_date }}
