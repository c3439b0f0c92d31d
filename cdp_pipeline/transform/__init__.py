"""dbt models as Dagster assets: staging, identity inputs, marts and segments."""
