"""Run a query `Plan` (plan.py) and return its `QueryResult`: from the session documents or the rollups
when they hold what the plan needs and can be trusted (rollup_compiler.py), else as one aggregation on
the events (plan_compiler.py); the measure `anomalies` runs the detectors (anomalies.py).
"""

from analytics import _aggregate, _query
from anomalies import detect_anomalies
from database import Store
from models import QueryResult
from plan import ANOMALY_COLUMNS, Plan
from plan_compiler import PlanError, _columns, _read, compile_plan
from rollup_compiler import _rollup_docs, _session_docs


async def run_plan(store: Store, plan: Plan, *, use_rollups: bool = True) -> QueryResult:
    """Run the plan as one aggregation (on the rollups or the session documents when they hold what
    it needs, else on the events); the table is shaped as plan.py describes."""
    if plan.measure == "anomalies":
        return await _anomalies(store, plan)
    if use_rollups and (found := await _session_docs(store, plan) or await _rollup_docs(store, plan)):
        docs, query = found
        rows, total = _read(plan, docs)
        return QueryResult(columns=_columns(plan), rows=rows, total=total, query=query)
    pipeline = compile_plan(plan, store.audit_name)
    docs = await _aggregate(store, pipeline)
    rows, total = _read(plan, docs)
    return QueryResult(columns=_columns(plan), rows=rows, total=total, query=_query(store, pipeline))


async def _anomalies(store: Store, plan: Plan) -> QueryResult:
    """The anomaly detectors over the plan's period (their own aggregations, in anomaly_queries.py)."""
    period = plan.period
    if period is None or period.start is None or period.end is None:
        raise PlanError("Les anomalies se cherchent sur une période précise (par exemple « cette semaine »).")
    found = await detect_anomalies(store, start=period.start, end=period.end)
    rows = []
    for a in found:
        item = a.model_dump() if hasattr(a, "model_dump") else dict(a)
        rows.append([item.get(c) for c in ANOMALY_COLUMNS])
    query = {"detector": "anomalies.detect_anomalies", "start": period.start, "end": period.end}
    return QueryResult(columns=list(ANOMALY_COLUMNS), rows=rows, total=len(rows), query=query)
