"""Stand-ins for dbt's Jinja context, so sqlfluff's jinja templater can render the models.

sqlfluff only lets the repository root choose the dbt templater, and `make lint` runs from
there, so the project lints with the jinja templater: these stubs render dbt's context
(adapter, env_var, graph, execute, target, run_started_at) and the `dbt` cross-database
macros (module `dbt` here) into plausible DuckDB SQL. They are for linting only.
"""

from datetime import datetime

execute = False
run_started_at = datetime(2025, 12, 1, 2, 0, 0)


class _Graph:
    nodes: dict = {}
    sources: dict = {}


class _Target:
    name = "duckdb"
    type = "duckdb"
    schema = "main"
    database = "cdp"


graph = _Graph()
target = _Target()


def env_var(name, default=""):
    return default


def _json_text(column_name, json_path):
    return f"json_extract_string({column_name}, '{json_path}')"


def _sorted_string_agg(measure, delimiter_text="','"):
    return f"string_agg({measure}, {delimiter_text} order by {measure})"


class _Adapter:
    _known = {"json_text": _json_text, "sorted_string_agg": _sorted_string_agg}

    def dispatch(self, macro_name, macro_namespace=None):
        return self._known.get(macro_name, lambda *args: f"{macro_name}({', '.join(args)})")


adapter = _Adapter()
