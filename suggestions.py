"""Next questions after an answer: built from the answer's rows, so that they find data, and worded
so that the reader (understand.py) reads them wholly (tests/test_chat_wording.py checks both)."""

from datetime import datetime, timedelta
from typing import Any

import french as fr
from answers import WIDE_DAYS, _cell, _is_empty, _number, _single_user, field_noun, value_text
from answers_lexicon import VALUE_COLUMNS
from config import settings
from models import QueryResult
from plan import TIME_BUCKETS, Period, Plan


def _said(plan: Plan) -> str:
    return f" {plan.period.label}" if plan.period is not None and plan.period.label else ""


def _is_wide(period: Period | None) -> bool:
    if period is None or period.start is None:
        return True
    end = period.end or datetime.now(settings.tz)
    return end - period.start >= timedelta(days=WIDE_DAYS)


def _about(field: str, value: Any, said: str) -> str | None:
    """A question about one value of a grouping field, known to be in the trail."""
    if value is None or value == "":
        return None
    shown = value_text(field, value)
    match field:
        case "dbusername" | "os_username":
            return f"Qu'a fait {shown}{said} ?"
        case "action_name":
            return f"Qui a fait le plus {fr.de(shown)}{said} ?"
        case "object_schema":
            return f"Quels utilisateurs ont accédé au schéma {shown}{said} ?"
        case "object_name":
            return f"Qui a accédé à {shown}{said} ?"
        case "userhost" | "terminal":
            return f"Quels utilisateurs se sont connectés depuis {shown}{said} ?"
        case "client_program_name":
            return f"Quels utilisateurs ont utilisé {shown}{said} ?"
        case "return_code":
            return f"Qui a eu l'erreur {shown}{said} ?" if shown.startswith("ORA-") else None
        case "day":
            return f"Quelles sont les actions les plus fréquentes le {shown} ?"
    return None


def next_questions(plan: Plan, result: QueryResult) -> list[str]:
    """Two or three follow-ups that find data: about the top group, the detail, a wider period."""
    said = _said(plan)
    out: list[str] = []
    if plan.measure == "anomalies":
        users = [u for u in (_cell(result, row, "dbusername") for row in result.rows) if u]
        if users:
            out.append(f"Qu'a fait {users[0]}{said} ?")
        out.append(f"Combien de connexions échouées{said} ?")
        out.append(f"Qui s'est connecté en dehors des heures de bureau{said} ?")
        return out[:3]
    user = _single_user(plan)
    if plan.compare is None and (not result.rows if plan.detail else _is_empty(plan, result)):
        if plan.period is not None:
            out.append(
                "Et sur toute la période ?" if _is_wide(plan.period) else "Et sur les 30 derniers jours ?"
            )
        if user:
            out.append(f"Qu'a fait {user}{said} ?")
        out.append("Quelle période couvrent les données ?")
        out.append(f"Quels sont les utilisateurs les plus actifs{said} ?")
    elif plan.detail:
        first = result.rows[0] if result.rows else None
        who = _cell(result, first, "dbusername") if first is not None else None
        when = (
            fr.as_datetime(_cell(result, first, "event_timestamp") or _cell(result, first, "start"))
            if first
            else None
        )
        if who and when:
            out.append(f"Qu'a fait {who} le {fr.fmt_day(when)} ?")
        out.append(f"Et par utilisateur{said} ?" if not user else f"Et par action{said} ?")
    elif plan.group_by:
        top = result.rows[0] if result.rows else None
        field = plan.group_by[0]
        if top is not None and field in TIME_BUCKETS:
            value_col = VALUE_COLUMNS.get(plan.measure, "count")
            top = max(result.rows, key=lambda r: _number(_cell(result, r, value_col)))
        if top is not None:
            question = _about(field, _cell(result, top, field), said)
            if question:
                out.append(question)
        if plan.measure == "events":
            out.append("Montre les événements correspondants")
        other = "action" if field == "dbusername" else "utilisateur"
        out.append(f"Et par {other}{said} ?")
    elif plan.measure == "coverage":
        out.append("Quels sont les utilisateurs les plus actifs ?")
        out.append("Combien d'événements par jour ?")
    else:
        row = result.rows[0] if result.rows else []
        who = _cell(result, row, "dbusername") if row else None
        if plan.measure in ("first", "last") and who:
            when = fr.as_datetime(_cell(result, row, plan.measure))
            out.append(f"Qu'a fait {who}{' le ' + fr.fmt_day(when) if when else said} ?")
        if plan.measure == "distinct" and plan.field:
            out.append(f"Et par {field_noun(plan.field)[0]}{said} ?")
        elif plan.measure in ("events", "share", "first", "last"):
            out.append("Montre les événements correspondants")
        elif plan.measure in ("sessions", "duration"):
            out.append("Montre les sessions correspondantes")
        if not user:
            out.append(f"Et par utilisateur{said} ?")
        elif set(plan.filters.include) == {"dbusername"}:
            out.append(f"Et par action{said} ?")  # 'Qu'a fait SCOTT ?' would be the same question
        else:
            out.append(f"Qu'a fait {user}{said} ?")
    out.append(f"Y a-t-il des activités suspectes{said} ?")
    picked: list[str] = []
    for q in out:
        about = q.split(" ")[:3] if q.startswith("Qu'a fait ") else q  # one question per user
        if all(about != (p.split(" ")[:3] if p.startswith("Qu'a fait ") else p) for p in picked):
            picked.append(q)
    return picked[:3]


# ---------------------------------------------------------------------------- plan as data
