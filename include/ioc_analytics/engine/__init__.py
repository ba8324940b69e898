"""The query engine interface every backend implements (DuckDB on ``local``, Athena on ``aws``)."""
