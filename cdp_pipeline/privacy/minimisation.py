"""Minimisation: analytics-facing tables carry profile ids, never names or contact details."""

import re

import duckdb

# Tables analysts and segment builders read; the golden record (marts.profiles) and the
# consent state are the only marts allowed to hold contact details.
ANALYTICS_RELATIONS = re.compile(
    r"^(marts\.(interactions|segment_members|profile_traits|propensity_scores|segment_\w+)"
    r"|segments\.\w+|ml\.\w+)$"
)
CONTACT_OR_NAME = re.compile(
    r"(e_?mail|phone|first_name|last_name|given_name|family_name|full_name|street|"
    r"house_number|birth_date|(^|_)ip($|_)|push_token|address)"
)


def minimisation_violations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """``schema.table.column`` of names or contact details in analytics-facing tables."""
    rows = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns"
        " order by 1, 2, 3"
    ).fetchall()
    return [
        f"{schema}.{table}.{column}"
        for schema, table, column in rows
        if ANALYTICS_RELATIONS.match(f"{schema}.{table}") and CONTACT_OR_NAME.search(column.lower())
    ]
