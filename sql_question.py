"""A question typed as SQL on the audit trail ("select count(*) from unified_audit_trail where ..."):
parsed by sqlglot (Oracle dialect) into a plan, or refused naming the part a plan cannot hold.

SQL says exactly what it asks, so it is read exactly: one SELECT on UNIFIED_AUDIT_TRAIL, with
- COUNT(*), COUNT(DISTINCT col), MIN/MAX(event_timestamp), *, DISTINCT columns, or the grouped columns;
- WHERE as AND of: col = / <> / IN / NOT IN values, LIKE / NOT LIKE patterns, an OR of equalities on
  one column, event_timestamp compared with a date, a timestamp or SYSDATE - n, ROWNUM <= n;
- GROUP BY columns (at most two) or TRUNC(event_timestamp); HAVING COUNT(*) compared with a number;
- ORDER BY the count or event_timestamp; FETCH FIRST n ROWS ONLY.
Anything else (a join, a subquery, another table, a function) is named as not understood: a partial
reading of a query is never run. Nothing here reaches a database: the plan is compiled as any other.
"""

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from nlp_lexicon import Gazetteer
from plan import FIELDS, INT_FIELDS, Period, Plan, Threshold

TRAIL_TABLES = frozenset({"unified_audit_trail", "actions_audit"})
COLUMN_ALIASES = {"sessionid": "session_id", "event_timestamp_utc": "event_timestamp"}
TIME_COLUMN = "event_timestamp"
_LOOKS_LIKE_SQL = re.compile(r"^\s*select\b.+\bfrom\b", re.IGNORECASE | re.DOTALL)


class SqlNotRead(Exception):
    """A part of the query that a plan cannot hold; `part` is its SQL text."""

    def __init__(self, node: exp.Expression | str) -> None:
        self.part = node if isinstance(node, str) else node.sql(dialect="oracle")
        super().__init__(self.part)


def looks_like_sql(question: str) -> bool:
    return bool(_LOOKS_LIKE_SQL.match(question))


def _column(node: exp.Expression) -> str:
    if not isinstance(node, exp.Column):
        raise SqlNotRead(node)
    name = COLUMN_ALIASES.get(node.name.lower(), node.name.lower())
    if name != TIME_COLUMN and name not in FIELDS:
        raise SqlNotRead(node)
    return name


def _value(node: exp.Expression, field: str) -> Any:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return -_value(node.this, field)
    if not isinstance(node, exp.Literal):
        raise SqlNotRead(node)
    if field in INT_FIELDS:
        try:
            return int(str(node.this))
        except ValueError:
            raise SqlNotRead(node) from None
    return str(node.this)


def _instant(node: exp.Expression, now: datetime, tz: ZoneInfo) -> datetime:
    """A date or timestamp literal (naive ones in APP_TIMEZONE), or SYSDATE / SYSTIMESTAMP - n."""
    if isinstance(node, exp.CurrentTimestamp | exp.Systimestamp | exp.CurrentDate):
        return now
    if isinstance(node, exp.Sub) and isinstance(
        node.this, exp.CurrentTimestamp | exp.Systimestamp | exp.CurrentDate
    ):
        amount = node.expression
        if isinstance(amount, exp.Literal) and not amount.is_string:
            return now - timedelta(days=float(str(amount.this)))
        if isinstance(amount, exp.Interval) and amount.unit is not None:
            unit = amount.unit.name.lower()
            n = float(str(amount.this.this)) if isinstance(amount.this, exp.Literal) else None
            if n is not None and unit in ("day", "hour", "minute"):
                return now - timedelta(**{f"{unit}s": n})
        raise SqlNotRead(node)
    literal = node.this if isinstance(node, exp.Func) and isinstance(node.this, exp.Literal) else node
    if isinstance(literal, exp.Literal) and literal.is_string:
        try:
            when = datetime.fromisoformat(str(literal.this).strip())
        except ValueError:
            raise SqlNotRead(node) from None
        return when if when.tzinfo else when.replace(tzinfo=tz)
    raise SqlNotRead(node)


def _like(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


class _Reader:
    def __init__(self, gaz: Gazetteer, now: datetime, tz: ZoneInfo) -> None:
        self.gaz, self.now, self.tz = gaz, now, tz
        self.include: dict[str, list[Any]] = {}
        self.exclude: dict[str, list[Any]] = {}
        self.failed: bool | None = None
        self.contains: list[str] = []
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.limit: int | None = None
        self.absent: dict[str, list[Any]] = {}

    def stored(self, field: str, value: Any) -> Any:
        """The stored spelling of a typed value; a value absent from the trail is kept and reported."""
        if field in INT_FIELDS or field not in self.gaz.values:
            return value
        found = self.gaz.canonical(field, str(value))
        if found is None:
            self.absent.setdefault(field, []).append(value)
            return value
        return found

    def values(self, field: str, nodes: list[exp.Expression], *, negate: bool) -> None:
        values = [_value(n, field) for n in nodes]
        if field == "return_code" and values == [0]:
            self.failed = negate  # "return_code <> 0": the failed statements
            return
        target = self.exclude if negate else self.include
        target.setdefault(field, []).extend(self.stored(field, v) for v in values)

    def like(self, field: str, pattern: exp.Expression, *, negate: bool) -> None:
        text = _value(pattern, field)
        if field == "sql_text":
            core = text.strip("%")
            if negate or not core or "%" in core or "_" in core:
                raise SqlNotRead(pattern)  # the plan holds substrings of sql_text, not patterns
            self.contains.append(core)
            return
        rx = _like(text)
        matching = [v for v in self.gaz.values.get(field, []) if rx.fullmatch(str(v))]
        if not matching:
            self.absent.setdefault(field, []).append(text)
            matching = [text]
        (self.exclude if negate else self.include).setdefault(field, []).extend(matching)

    def time(self, op: type[exp.Expression], value: exp.Expression) -> None:
        when = _instant(value, self.now, self.tz)
        if op in (exp.GT, exp.GTE):
            self.start = max(self.start, when) if self.start else when
        else:
            end = when + timedelta(microseconds=1) if op is exp.LTE else when
            self.end = min(self.end, end) if self.end else end

    def condition(self, node: exp.Expression) -> None:
        if isinstance(node, exp.And):
            self.condition(node.this)
            self.condition(node.expression)
            return
        if isinstance(node, exp.Paren):
            self.condition(node.this)
            return
        negate = isinstance(node, exp.Not)
        inner = node.this if negate else node
        if isinstance(inner, exp.Or):
            self.alternatives(inner, negate=negate)
            return
        if isinstance(inner, exp.In) and not inner.args.get("query"):
            self.values(_column(inner.this), inner.expressions, negate=negate)
            return
        if isinstance(inner, exp.Like):
            self.like(_column(inner.this), inner.expression, negate=negate != bool(inner.args.get("negate")))
            return
        if isinstance(inner, exp.Between) and not negate and _column(inner.this) == TIME_COLUMN:
            self.time(exp.GTE, inner.args["low"])
            self.time(exp.LTE, inner.args["high"])
            return
        if not negate and isinstance(inner, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
            self.comparison(inner)
            return
        raise SqlNotRead(node)

    def comparison(self, node: exp.Expression) -> None:
        left, right = node.this, node.expression
        if isinstance(left, exp.Column) and left.name.lower() == "rownum":
            if isinstance(node, exp.LTE | exp.LT) and isinstance(right, exp.Literal) and not right.is_string:
                self.limit = int(str(right.this)) - (1 if isinstance(node, exp.LT) else 0)
                return
            raise SqlNotRead(node)
        field = _column(left)
        if field == TIME_COLUMN:
            if isinstance(node, exp.EQ | exp.NEQ):
                raise SqlNotRead(node)
            self.time(type(node), right)
            return
        if isinstance(node, exp.EQ | exp.NEQ):
            self.values(field, [right], negate=isinstance(node, exp.NEQ))
            return
        raise SqlNotRead(node)

    def alternatives(self, node: exp.Or, *, negate: bool) -> None:
        """ "a = 'X' OR a = 'Y'": one column's values; any other OR is another question."""
        leaves: list[exp.Expression] = []
        stack: list[exp.Expression] = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, exp.Or):
                stack += [n.this, n.expression]
            elif isinstance(n, exp.Paren):
                stack.append(n.this)
            else:
                leaves.append(n)
        if not all(isinstance(n, exp.EQ) for n in leaves):
            raise SqlNotRead(node)
        fields = {_column(n.this) for n in leaves}
        if len(fields) != 1 or TIME_COLUMN in fields:
            raise SqlNotRead(node)
        self.values(fields.pop(), [n.expression for n in reversed(leaves)], negate=negate)


def _aggregate(node: exp.Expression) -> tuple[str, str | None] | None:
    """(measure, field) of an aggregate in the select list, or None for a plain column."""
    if isinstance(node, exp.Alias):
        node = node.this
    if isinstance(node, exp.Count):
        if isinstance(node.this, exp.Star):
            return "events", None
        if isinstance(node.this, exp.Distinct) and len(node.this.expressions) == 1:
            field = _column(node.this.expressions[0])
            return ("sessions", None) if field == "session_id" else ("distinct", field)
        raise SqlNotRead(node)
    if isinstance(node, exp.Max | exp.Min) and _column(node.this) == TIME_COLUMN:
        return ("last" if isinstance(node, exp.Max) else "first"), None
    if isinstance(node, exp.AggFunc):
        raise SqlNotRead(node)
    return None


def _dimension(node: exp.Expression) -> str:
    if isinstance(node, exp.Alias):
        node = node.this
    if isinstance(node, exp.Anonymous | exp.DateTrunc | exp.TimestampTrunc) and node.name.upper() == "TRUNC":
        args = node.expressions or [node.this]
        if len(args) == 1 and _column(args[0]) == TIME_COLUMN:
            return "day"
    if isinstance(node, exp.Column):
        field = _column(node)
        if field != TIME_COLUMN:
            return field
    raise SqlNotRead(node)


def _order(tree: exp.Select, measure_at: int | None) -> str | None:
    order = tree.args.get("order")
    if order is None:
        return None
    if len(order.expressions) != 1:
        raise SqlNotRead(order)
    ordered = order.expressions[0]
    key, desc = ordered.this, bool(ordered.args.get("desc"))
    ordinal = isinstance(key, exp.Literal) and not key.is_string
    if ordinal and measure_at is not None and int(str(key.this)) - 1 == measure_at:
        return "desc" if desc else "asc"
    if measure_at is not None and _aggregate(key) is not None:
        return "desc" if desc else "asc"
    if isinstance(key, exp.Column) and _column(key) == TIME_COLUMN:
        return "newest" if desc else "oldest"
    raise SqlNotRead(ordered)


def _plan_args(
    tree: exp.Expression, gaz: Gazetteer, now: datetime, tz: ZoneInfo
) -> tuple[dict[str, Any], _Reader]:
    if not isinstance(tree, exp.Select):
        raise SqlNotRead(tree)
    for key in ("joins", "laterals", "qualify", "with", "connect", "pivots"):
        found = tree.args.get(key)
        if found:
            node = found[0] if isinstance(found, list) else found
            raise SqlNotRead(node if isinstance(node, exp.Expression) else key.upper())
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or table.name.lower() not in TRAIL_TABLES:
        raise SqlNotRead(table if table is not None else "FROM")
    if list(tree.find_all(exp.Subquery)):
        raise SqlNotRead(next(tree.find_all(exp.Subquery)))
    r = _Reader(gaz, now, tz)
    where = tree.args.get("where")
    if where is not None:
        r.condition(where.this)

    select = list(tree.expressions)
    aggregates = [(i, a) for i, a in enumerate(_aggregate(e) for e in select) if a is not None]
    if len(aggregates) > 1:
        raise SqlNotRead(select[aggregates[1][0]])
    group = tree.args.get("group")
    group_by = [_dimension(e) for e in group.expressions] if group is not None else []
    plain = [e for i, e in enumerate(select) if i not in {a for a, _ in aggregates}]
    args: dict[str, Any] = {}
    if aggregates:
        at, (measure, field) = aggregates[0]
        if [_dimension(e) for e in plain] != group_by or len(group_by) > 2:
            raise SqlNotRead(group if group is not None else select[0])
        args.update(measure=measure, field=field, group_by=group_by)
        if measure in ("first", "last") and group_by:
            args.update(order=None)
        ordered = _order(tree, at)
        if ordered in ("desc", "asc"):
            args["order"] = ordered
        elif ordered is not None:
            raise SqlNotRead(tree.args["order"])
    elif tree.args.get("distinct") and group is None:  # "select distinct dbusername": the values, counted
        dims = [_dimension(e) for e in select]
        if len(dims) > 2:
            raise SqlNotRead(select[2])
        args.update(group_by=dims)
    else:
        if group is not None or not all(isinstance(e, exp.Star | exp.Column) for e in select):
            raise SqlNotRead(group if group is not None else select[0])
        for e in select:
            if isinstance(e, exp.Column):
                _column(e)  # a column the trail holds; the listing shows every column
        args.update(detail=True, order=_order(tree, None) or "newest")
        if args["order"] not in ("newest", "oldest"):
            raise SqlNotRead(tree.args["order"])
    having = tree.args.get("having")
    if having is not None:
        h = having.this
        ops = {exp.GT: "gt", exp.GTE: "gte", exp.LT: "lt", exp.LTE: "lte"}
        op = ops.get(type(h))
        if op is None or _aggregate(h.this) != ("events", None) or not isinstance(h.expression, exp.Literal):
            raise SqlNotRead(having)
        args["threshold"] = Threshold(op=op, value=float(str(h.expression.this)))  # type: ignore[arg-type]
    fetch = tree.args.get("limit")
    if fetch is not None:
        count = fetch.args.get("count") if isinstance(fetch, exp.Fetch) else fetch.expression
        if not (isinstance(count, exp.Literal) and not count.is_string):
            raise SqlNotRead(fetch)
        r.limit = int(str(count.this))
    if r.limit is not None:
        args["limit"] = r.limit
    return args, r


def read(
    question: str, gaz: Gazetteer, *, now: datetime, tz: ZoneInfo
) -> tuple[Plan | None, dict[str, list[Any]], str | None]:
    """(plan, absent values, None), or (None, {}, the part of the query that a plan cannot hold)."""
    try:
        tree = sqlglot.parse_one(question.strip().rstrip(";"), read="oracle")
    except sqlglot.errors.SqlglotError:
        return None, {}, question.strip()
    try:
        args, r = _plan_args(tree, gaz, now, tz)
    except SqlNotRead as exc:
        return None, {}, exc.part
    filters = {"include": r.include, "exclude": r.exclude, "failed": r.failed, "sql_contains": r.contains}
    period = None
    if r.start is not None or r.end is not None:
        period = Period(start=r.start, end=r.end, label="période de la requête")
    try:
        plan = Plan(**args, filters=filters, period=period)
    except ValueError:
        return None, {}, question.strip()
    return plan, r.absent, None
