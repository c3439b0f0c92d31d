"""An open-source Customer Data Platform: Dagster assets over a DuckDB lakehouse."""
