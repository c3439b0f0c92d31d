"""Stand-ins for dbt's cross-database macros (`{{ dbt.concat(...) }}` …), lint only."""


def concat(fields):
    return "concat(" + ", ".join(fields) + ")"


def hash(field):  # noqa: A001 - the name of dbt's macro
    return f"md5(cast({field} as varchar))"


def type_string():
    return "varchar"


def type_timestamp():
    return "timestamp"


def current_timestamp():
    return "now()"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"date_add({from_date_or_timestamp}, interval ({interval}) {datepart})"


def datediff(first_date, second_date, datepart):
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def date_trunc(datepart, date):
    return f"date_trunc('{datepart}', {date})"


def safe_cast(field, type_name):
    return f"try_cast({field} as {type_name})"


def listagg(measure, delimiter_text="','", order_by_clause=None, limit_num=None):
    order_by = f" {order_by_clause}" if order_by_clause else ""
    return f"string_agg({measure}, {delimiter_text}{order_by})"
