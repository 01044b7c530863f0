"""Audit reports in the Oracle Data Safe set, over any window, as JSON, CSV, XLSX and PDF. Free of FastAPI.

Every figure comes from the chat's compiler: each section is a `plan.Plan` run by
`plan_runner.run_plan` (the anomaly section is the plan measure "anomalies", i.e. the detectors).
The reports:

- activity: activity summary (events, sessions, failures; per day, user, action, program);
- admin: admin and privileged activity (REPORT_ADMIN_USERS, use of system privileges);
- entitlements: user and entitlement changes (CREATE/ALTER/DROP USER, roles, GRANT/REVOKE);
- failed_logins: failed logins per user and host, and the attempts;
- watched_objects: access to the watched objects (REPORT_WATCHED_OBJECTS or `objects=`);
- schema_changes: DDL (CREATE, ALTER, DROP, TRUNCATE, RENAME...) on schema objects;
- anomalies: the findings of the anomaly detectors.

Rendering (CSV, XLSX with openpyxl, PDF with reportlab) runs in a worker thread.
"""

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from anomaly_queries import ACCOUNT_ACTIONS
from config import settings
from database import Store
from plan import Filters, Period, Plan
from plan_runner import run_plan

DETAIL_ROWS = 1000  # events listed in a section, at most


class Section(BaseModel):
    key: str
    title: str
    description: str = ""
    columns: list[str]
    rows: list[list[Any]]
    total: int
    chart: str | None = None  # "bar": the first column against the last, in the PDF
    plan: dict[str, Any] = Field(default_factory=dict)


class Report(BaseModel):
    kind: str
    title: str
    description: str
    start: datetime
    end: datetime
    filters: dict[str, list[str]]
    generated_at: datetime
    sections: list[Section]


class ReportError(ValueError):
    """The report cannot be made as asked (French message)."""


REPORTS: dict[str, tuple[str, str]] = {
    "activity": (
        "Synthèse de l'activité",
        "Volume d'activité de la base sur la période, par jour, compte, action et programme.",
    ),
    "admin": (
        "Activité des administrateurs et privilèges",
        "Actions des comptes d'administration et usages de privilèges système.",
    ),
    "entitlements": (
        "Modifications des comptes et des droits",
        "Comptes et rôles créés, modifiés ou supprimés ; droits attribués ou retirés.",
    ),
    "failed_logins": ("Échecs de connexion", "Tentatives de connexion refusées, par compte et par poste."),
    "watched_objects": (
        "Accès aux objets surveillés",
        "Qui a lu ou modifié les objets surveillés, et comment.",
    ),
    "schema_changes": (
        "Modifications de schéma (DDL)",
        "Créations, modifications, suppressions et vidages d'objets.",
    ),
    "anomalies": (
        "Anomalies détectées",
        "Constats des détecteurs d'anomalies sur la période, du plus grave au moins grave.",
    ),
}

COLUMN_LABELS = {
    "count": "Événements", "sessions": "Sessions", "distinct": "Valeurs distinctes", "day": "Jour",
    "dbusername": "Compte", "userhost": "Poste", "action_name": "Action", "object_schema": "Schéma",
    "object_name": "Objet", "client_program_name": "Programme", "os_username": "Utilisateur système",
    "event_timestamp": "Horodatage", "return_code": "Code retour", "terminal": "Terminal",
    "session_id": "Session", "sql_text": "Ordre SQL", "system_privilege_used": "Privilège système",
    "type": "Type", "severity": "Gravité", "title": "Titre", "explanation": "Explication",
    "start": "Début", "end": "Fin", "first": "Premier", "last": "Dernier",
}  # fmt: skip


def _watched() -> list[str]:
    return [o.strip().upper() for o in settings.REPORT_WATCHED_OBJECTS if o.strip()]


def _base(filters: dict[str, list[str]]) -> dict[str, list[Any]]:
    return {k: list(v) for k, v in filters.items() if v}


def _plans(
    kind: str, filters: dict[str, list[str]], objects: list[str]
) -> list[tuple[str, str, str, Plan, str | None]]:
    """(key, title, description, plan without period, chart) of each section of a report."""
    base = _base(filters)

    def f(**extra: Any) -> Filters:
        include = {**base, **extra.pop("include", {})}
        return Filters(include=include, **extra)

    def grouped(by: list[str], **extra: Any) -> Plan:
        return Plan(measure="events", group_by=by, filters=f(**extra))

    def detail(**extra: Any) -> Plan:
        return Plan(measure="events", detail=True, limit=DETAIL_ROWS, order="newest", filters=f(**extra))

    if kind == "activity":
        return [
            (
                "total",
                "Événements",
                "Nombre d'événements d'audit.",
                Plan(measure="events", filters=f()),
                None,
            ),
            (
                "sessions",
                "Sessions",
                "Nombre de sessions distinctes.",
                Plan(measure="sessions", filters=f()),
                None,
            ),
            (
                "failed",
                "Échecs",
                "Événements en échec (code retour non nul).",
                Plan(measure="events", filters=f(failed=True)),
                None,
            ),
            ("by_day", "Par jour", "Événements par jour (heure locale).", grouped(["day"]), "bar"),
            ("by_user", "Par compte", "Événements par compte de base.", grouped(["dbusername"]), "bar"),
            ("by_action", "Par action", "Événements par type d'action.", grouped(["action_name"]), None),
            (
                "by_program",
                "Par programme",
                "Événements par programme client.",
                grouped(["client_program_name"]),
                None,
            ),
            (
                "off_hours",
                "Hors heures ouvrées",
                "Événements hors heures ouvrées ou le week-end, par compte.",
                grouped(["dbusername"], off_hours=True),
                None,
            ),
        ]
    if kind == "admin":
        admins = [u.upper() for u in settings.REPORT_ADMIN_USERS]
        only = [u for u in admins if not base.get("dbusername") or u in base["dbusername"]] or ["\u0000"]
        return [
            (
                "admin_by_action",
                "Comptes d'administration : actions",
                f"Actions de {', '.join(admins)}, par compte et action.",
                grouped(["dbusername", "action_name"], include={"dbusername": only}),
                None,
            ),
            (
                "admin_by_host",
                "Comptes d'administration : postes",
                "Par compte et poste.",
                grouped(["dbusername", "userhost"], include={"dbusername": only}),
                None,
            ),
            (
                "system_privileges",
                "Usages de privilèges système",
                "Événements où un privilège système a servi, par compte et action.",
                grouped(["dbusername", "action_name"], categories=["system_privilege"]),
                "bar",
            ),
            (
                "admin_events",
                "Détail des actions d'administration",
                f"Les {DETAIL_ROWS} plus récentes.",
                detail(include={"dbusername": only}, exclude={"action_name": ["SELECT", "LOGON", "LOGOFF"]}),
                None,
            ),
        ]
    if kind == "entitlements":
        actions = list(ACCOUNT_ACTIONS)
        return [
            (
                "by_action",
                "Par action",
                "Changements de comptes et de droits, par action.",
                grouped(["action_name"], include={"action_name": actions}),
                "bar",
            ),
            (
                "by_user",
                "Par auteur",
                "Par compte auteur et action.",
                grouped(["dbusername", "action_name"], include={"action_name": actions}),
                None,
            ),
            (
                "events",
                "Détail",
                f"Les {DETAIL_ROWS} plus récents.",
                detail(include={"action_name": actions}),
                None,
            ),
        ]
    if kind == "failed_logins":
        return [
            (
                "total",
                "Échecs de connexion",
                "Nombre de connexions refusées.",
                Plan(measure="events", filters=f(categories=["logon"], failed=True)),
                None,
            ),
            (
                "by_user",
                "Par compte",
                "Connexions refusées par compte visé.",
                grouped(["dbusername"], categories=["logon"], failed=True),
                "bar",
            ),
            (
                "by_user_host",
                "Par compte et poste",
                "Par compte et poste d'origine.",
                grouped(["dbusername", "userhost"], categories=["logon"], failed=True),
                None,
            ),
            (
                "by_code",
                "Par code d'erreur",
                "Par code retour (ORA-).",
                grouped(["return_code"], categories=["logon"], failed=True),
                None,
            ),
            (
                "events",
                "Détail",
                f"Les {DETAIL_ROWS} plus récentes.",
                detail(categories=["logon"], failed=True),
                None,
            ),
        ]
    if kind == "watched_objects":
        sections = []
        for name in objects:
            schema, _, obj = name.rpartition(".")
            include = {"object_name": [obj]} | ({"object_schema": [schema]} if schema else {})
            sections += [
                (
                    f"{name}:by_user",
                    f"{name} : par compte et action",
                    f"Accès à {name} par compte et action.",
                    grouped(["dbusername", "action_name"], include=include),
                    None,
                ),
                (
                    f"{name}:events",
                    f"{name} : détail",
                    f"Les {DETAIL_ROWS} accès les plus récents.",
                    detail(include=include),
                    None,
                ),
            ]
        return sections
    if kind == "schema_changes":
        ddl: dict[str, Any] = {"categories": ["ddl"], "exclude": {"action_name": list(ACCOUNT_ACTIONS)}}
        return [
            (
                "by_action",
                "Par action",
                "Opérations de structure par action.",
                grouped(["action_name"], **ddl),
                "bar",
            ),
            (
                "by_schema",
                "Par schéma et auteur",
                "Par schéma et compte auteur.",
                grouped(["object_schema", "dbusername"], **ddl),
                None,
            ),
            ("events", "Détail", f"Les {DETAIL_ROWS} plus récentes.", detail(**ddl), None),
        ]
    if kind == "anomalies":
        return [("findings", "Anomalies", "Du plus grave au moins grave.", Plan(measure="anomalies"), None)]
    raise ReportError(f"Rapport inconnu : « {kind} » ; choix : {', '.join(REPORTS)}.")


async def build(
    store: Store,
    kind: str,
    *,
    start: datetime,
    end: datetime,
    filters: dict[str, list[str]] | None = None,
    objects: list[str] | None = None,
) -> Report:
    """The report's sections over [start, end), each computed by `run_plan`."""
    if kind not in REPORTS:
        raise ReportError(f"Rapport inconnu : « {kind} » ; choix : {', '.join(REPORTS)}.")
    if start >= end:
        raise ReportError("La date de début doit précéder la date de fin.")
    filters = {k: [str(x) for x in v] for k, v in (filters or {}).items() if v}
    watched = [o.strip().upper() for o in objects or [] if o.strip()] or _watched()
    if kind == "watched_objects" and not watched:
        raise ReportError(
            "Aucun objet surveillé : indiquez « objects » (SCHEMA.OBJET) ou REPORT_WATCHED_OBJECTS."
        )
    period = Period(start=start, end=end, label="")
    specs = _plans(kind, filters, watched)
    plans = [p.model_copy(update={"period": period}) for _, _, _, p, _ in specs]
    results = await asyncio.gather(*(run_plan(store, p) for p in plans))
    sections = []
    for (key, title, description, _, chart), plan, result in zip(specs, plans, results, strict=True):
        rows = result.rows
        if plan.measure == "anomalies" and filters.get("dbusername"):
            col = result.columns.index("dbusername")
            rows = [r for r in rows if r[col] in filters["dbusername"]]
        sections.append(
            Section(
                key=key,
                title=title,
                description=description,
                columns=result.columns,
                rows=rows,
                total=len(rows) if plan.measure == "anomalies" else result.total,
                chart=chart,
                plan=plan.model_dump(mode="json", exclude_defaults=True),
            )
        )
    title, description = REPORTS[kind]
    shown = dict(filters) | ({"objects": watched} if kind == "watched_objects" else {})
    return Report(kind=kind, title=title, description=description, start=start, end=end, filters=shown,
                  generated_at=datetime.now(UTC), sections=sections)  # fmt: skip


# --------------------------------------------------------------------------- rendering


def _local(dt: datetime) -> str:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(settings.tz).strftime("%d/%m/%Y %H:%M")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return (
            (value if value.tzinfo else value.replace(tzinfo=UTC))
            .astimezone(settings.tz)
            .isoformat(timespec="seconds")
        )
    if isinstance(value, list | dict):
        return str(value)
    return value


def _window(report: Report) -> str:
    return f"du {_local(report.start)} au {_local(report.end)} ({settings.APP_TIMEZONE})"


def _filters_text(report: Report) -> str:
    if not report.filters:
        return "aucun"
    return " ; ".join(f"{COLUMN_LABELS.get(k, k)} : {', '.join(v)}" for k, v in report.filters.items())


def to_csv(report: Report, section: str | None = None) -> str:
    """One section as a plain table, or every section one after the other (a title row, the header,
    the rows, a blank line). `;`-separated, as French spreadsheets expect."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    chosen = [s for s in report.sections if section is None or s.key == section]
    if section is not None and not chosen:
        raise ReportError(
            f"Section inconnue : « {section} » ; choix : {', '.join(s.key for s in report.sections)}."
        )
    if section is None:
        writer.writerow([report.title, _window(report), f"Filtres : {_filters_text(report)}"])
        writer.writerow([])
    for s in chosen:
        if section is None:
            writer.writerow([s.title])
        writer.writerow(s.columns)
        for row in s.rows:
            writer.writerow([_cell(v) for v in row])
        if section is None:
            writer.writerow([])
    return out.getvalue()


def to_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    summary = wb.active
    summary.title = "Rapport"
    for row in (
        [report.title],
        [report.description],
        ["Période", _window(report)],
        ["Filtres", _filters_text(report)],
        ["Généré le", _local(report.generated_at)],
        [],
        ["Section", "Lignes"],
        *[[s.title, s.total] for s in report.sections],
    ):
        summary.append(row)
    summary["A1"].font = Font(bold=True, size=14)
    used: set[str] = {"Rapport"}
    for i, s in enumerate(report.sections, 1):
        name = "".join(c for c in s.title if c not in "[]:*?/\\")[:28] or f"Section {i}"
        while name in used:
            name = f"{name[:25]} {i}"
        used.add(name)
        ws = wb.create_sheet(name)
        ws.append([COLUMN_LABELS.get(c, c) for c in s.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in s.rows:
            ws.append([_xlsx_cell(v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, datetime):  # Excel has no time zones: local time, naive
        return (
            (value if value.tzinfo else value.replace(tzinfo=UTC))
            .astimezone(settings.tz)
            .replace(tzinfo=None)
        )
    return _cell(value)


def to_pdf(report: Report) -> bytes:
    from xml.sax.saxutils import escape

    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), title=report.title, leftMargin=1.5 * cm,
                            rightMargin=1.5 * cm, topMargin=1.5 * cm, bottomMargin=1.5 * cm)  # fmt: skip
    story: list[Any] = [
        Paragraph(escape(report.title), styles["Title"]),
        Paragraph(escape(report.description), styles["BodyText"]),
        Paragraph(f"<b>Période :</b> {escape(_window(report))}", styles["BodyText"]),
        Paragraph(f"<b>Filtres :</b> {escape(_filters_text(report))}", styles["BodyText"]),
        Paragraph(f"<b>Généré le :</b> {escape(_local(report.generated_at))}", styles["BodyText"]),
        Spacer(1, 0.4 * cm),
    ]
    for s in report.sections:
        story.append(Paragraph(escape(s.title), styles["Heading2"]))
        if s.description:
            story.append(Paragraph(escape(s.description), styles["BodyText"]))
        if not s.rows:
            story.append(Paragraph("Aucun événement sur la période.", styles["Italic"]))
            continue
        if s.chart == "bar" and len(s.rows) > 1 and isinstance(s.rows[0][-1], int | float):
            rows = s.rows[:31]
            drawing = Drawing(24 * cm, 6 * cm)
            chart = VerticalBarChart()
            chart.x, chart.y, chart.width, chart.height = 1.5 * cm, 1.2 * cm, 21 * cm, 4.3 * cm
            chart.data = [[float(r[-1] or 0) for r in rows]]
            chart.categoryAxis.categoryNames = [str(r[0])[:14] for r in rows]
            chart.categoryAxis.labels.fontSize = 6
            chart.categoryAxis.labels.angle = 30
            chart.categoryAxis.labels.boxAnchor = "ne"
            chart.valueAxis.labels.fontSize = 7
            chart.valueAxis.valueMin = 0
            chart.bars[0].fillColor = colors.HexColor("#2f5d8a")
            drawing.add(chart)
            story.append(drawing)
        header = [Paragraph(f"<b>{escape(COLUMN_LABELS.get(c, c))}</b>", small) for c in s.columns]
        body = [[Paragraph(escape(str(_pdf_cell(v)))[:400], small) for v in row] for row in s.rows[:300]]
        table = Table([header, *body], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dfe7f0")),
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
        if len(s.rows) > 300:
            story.append(
                Paragraph(f"… {len(s.rows) - 300} lignes de plus dans les exports CSV et XLSX.", small)
            )
        story.append(Spacer(1, 0.3 * cm))
    doc.build(story)
    return out.getvalue()


def _pdf_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return _local(value)
    return "" if value is None else _cell(value)


FORMATS: dict[str, tuple[str, str, Callable[[Report], Any]]] = {
    "csv": ("text/csv; charset=utf-8", "csv", to_csv),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", to_xlsx),
    "pdf": ("application/pdf", "pdf", to_pdf),
}


async def render(report: Report, fmt: str, section: str | None = None) -> tuple[bytes, str, str]:
    """(content, media type, file extension) of the report in a format, rendered off the event loop."""
    if fmt == "csv":
        text = await asyncio.to_thread(to_csv, report, section)
        return ("\ufeff" + text).encode(), FORMATS["csv"][0], "csv"
    if fmt not in FORMATS:
        raise ReportError(f"Format inconnu : « {fmt} » ; choix : json, csv, xlsx, pdf.")
    media, ext, fn = FORMATS[fmt]
    return await asyncio.to_thread(fn, report), media, ext
