# ruff: noqa: E501 (rule tables and regular expressions read better unwrapped)
"""The reading passes of understand.py: each finds its words in the question (on accent-folded text),
marks them as read, and records what they mean as items of a `Text`. understand.py runs them in order
and assembles the items into a plan.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

import understand_lexicon as lx
from nlp_lexicon import ACCOUNT_CLASSES, Gazetteer, accounts_of_class, fold_key
from plan import INT_FIELDS, Period, Threshold
from time_parser import MONTHS, NUMBERS, WEEKDAYS, fold, parse_time


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w$#])(?:" + pattern + r")(?:(?<=['\s])|(?![\w$#]))")


_FIELD_RX = [(_rx(p), f) for p, f in lx.FIELD_WORDS]
BUCKET_RX = [(_rx(p), b) for p, b in lx.BUCKET_WORDS]
_CATEGORY_RX = [(_rx(p), cats, acts, note) for p, cats, acts, note in lx.CATEGORY_WORDS]
OUT_RX = [(re.compile(r"(?<![\w$#-])(?:" + p + r")(?![\w$#-])"), topic) for p, topic in lx.OUT_OF_SCOPE]
_AUTH_RX = [(_rx(p), value) for p, value in lx.AUTH_WORDS.items()]
_DAYPART_RX = [(_rx(p), hours) for p, hours in lx.DAYPARTS.items()]
R = {name: _rx(getattr(lx, name)) for name in (
    "FAILED_WORDS", "SUCCESS_WORDS", "COUNT_WORDS", "DISTINCT_WORDS", "SHARE_WORDS", "LAST_WORDS", "FIRST_WORDS",
    "COVERAGE_WORDS", "DETAIL_WORDS", "RANK_MOST", "RANK_LEAST", "GROUP_WORDS", "SESSION_OPEN", "DURATION_WORDS",
    "EVENT_NOUNS", "EXCLUDE_WORDS", "HAVING_BOTH", "HAVING_ONLY", "HAVING_NEVER", "SEQUENCE_WORDS", "SEQUENCE_BACK",
    "COMPARE_WORDS", "THRESHOLD", "OFF_HOURS", "IN_HOURS", "HOUR_WINDOW", "HOUR_AFTER", "HOUR_BEFORE", "HELP", "SMALL_TALK",
    "FILLER_PHRASES", "ORA_CODE", "WINDOW", "WHO_WHAT", "PEAK_WORDS", "ANOMALY_WORDS", "WHAT_DONE", "SAME_WORDS", "COMMANDS",
)}  # fmt: skip
_WEEKDAY_BEFORE_DATE = re.compile(
    r"\b(?:"
    + "|".join(WEEKDAYS)
    + r")\s+(?=(?:\d{1,2}|1er|premier)(?:\s*[/.-]\d|\s+(?:au|a|et|jusqu\w*)\b|\s+(?:"
    + "|".join(MONTHS)
    + r")\b))"
)  # "le lundi 23 novembre", "samedi 21/11", "du lundi 9 au ...": the date wins; "dimanche 22" alone is
# read by time_parser, its weekday checked
# "DBUSERNAME != 'X'", "action_name in (SELECT, DELETE)": matched on the typed text; unquoted items after a
# comma must look like values (capitals, digits), so "RETURN_CODE = 1017, combien ?" keeps its French.
_COLUMN_OP = re.compile(
    r"(?P<col>(?i:[a-z_]+))\s*(?P<op>!=|<>|=|\b(?i:not in)\b|\b(?i:in)\b)\s*\(?\s*"
    r"(?P<vals>(?:'[^']*'|\"[^\"]*\"|[\w$#.@-]+)(?:\s*,\s*(?:'[^']*'|\"[^\"]*\"|(?!(?:COUNT|GROUP|WHERE|AND|OR|ORDER|FROM|HAVING|LIMIT)\b)[A-Z0-9_$#.@-]+\b))*)\s*\)?"
)
_CONTAINS_VERB = re.compile(
    r"(?i:qui\s+)?(?i:citent|cite|mentionnent|mentionne|contiennent|contient|font r[ée]f[ée]rence [àa]|fait r[ée]f[ée]rence [àa]|"
    r"parlent de|parle de|avec un|avec le mot|contenant)\s+(?P<q>[A-Z][A-Z0-9_$#.]+)\b"
)
PREAMBLE = re.compile(lx.PREAMBLE)
_ORA_MESSAGE_RX = [(_rx(p), code) for p, code in lx.ORA_MESSAGES.items()]
_SQL_GROUP_BY = re.compile(r"\bgroup(?:e|es)? by\b")
_SQL_LIKE = re.compile(r"\blike\s+'%?(?P<q>[^'%]+)%?'")
_SQL_COUNT_DISTINCT = re.compile(r"\bcount\s*\(\s*distinct\s+\w+\s*\)")
_SQL_AGG = re.compile(r"\b(?P<f>max|min|count)\s*\(\s*(?:event_timestamp|\*|1)?\s*\)|\b(?P<f2>max|min)\s*\(")
_NOT_NULL = re.compile(r"\b(?:is not null|n'est pas null|non null|not null|pas null|non vide)\b")
_IN_PROGRESS = re.compile(r"(?:la |sur la |pendant la |dans la )?(?P<u>semaine|mois|annee|journee) en cours")
LIST_GAP = re.compile(
    r"[\s(),]*(?:(?:et|ou|ni|&|/)\s*)?(?:(?:les?|la|des|du|de la|de|d'|l'|aux?|ni|pas|ses|leurs?|ceux|celles)\s*)*[\s()]*"
)
EARLY_FILLERS = re.compile(
    r"quel(?:le)?s? que soi(?:en)?t (?:le |la |les |l')?\S+(?: (?:de |d')\S+)?|(?:qu')?est[- ]ce qu(?:e|'|i)|(?:qui )?(?:commen|se termin)\w* par(?= (?:tmp|temp|gtt)\b| (?:tmp|temp|gtt)_)"
    # a column filtered by a prefix (the temporary tables' only), not a grouping
    r"|\b(?:object_name|object_schema|dbusername|os_username|userhost|client_program_name|terminal) (?=(?:qui )?(?:commen|se termin)\w* par (?:tmp|temp|gtt)(?:\b|_))"
    r"|(?:seulement|juste|uniquement)(?= (?:les )?\d+ (?:premi|derni))"  # "seulement les 3 premiers"
    r"|^\W*(?:et )?(?:seulement|juste|uniquement)(?= (?:les|la|le|l'|sur|pour|en|par)\b)"  # "juste les erreurs": a filter
    r"|tou(?:te)?s (?:les )?\w+ confondue?s"  # "toutes erreurs confondues": every one, no filter
    r"|en ne (?:comptant|gardant|retenant|prenant) que"  # "..., en ne comptant que celles qui ont réussi"
    r"|(?:toute )?la journee (?=d'hier|d'aujourd'hui|d'avant-hier|du \d|de (?:lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\b)d'?"
)
SHARE_WHOLE = re.compile(
    r"^\W*sur (?:les|le|la|l')|\bdans (?:les|le|la|l')(?! ?(?:ensemble|total|activite|volume)\b)|"
    r"\b(?:pour\b|chez\b|parmi|dans l'ensemble|sur l'ensemble|dans le total|sur le total|au sein|par rapport (?:au total|a l'ensemble)|"
    r"(?:dans|de|sur|parmi) l'activite|(?:dans|sur) le volume|(?:dans|sur) l'ensemble)"
    r"(?:(?: de la| des| du| de)\b| d')?(?:(?: les| la| le)\b| l')?"
)
SHARE_PIVOT_VERB = re.compile(
    r"\b(?:vient|viennent|provien\w*|correspond\w*|est|sont|ont eu lieu|a eu lieu|a lieu|ont lieu|concern\w*|"
    r"touch\w*|se fai\w*|s'est fai\w*|se sont fai\w*|a ete|ont ete|etaient|etait|situe\w*|constitue\w*)\b"
)
SHARE_PIVOT = re.compile(
    r"\b(?:dans|vient|viennent|provien\w*|correspond\w*|tape\w*|est|sont|a lieu|ont lieu|concern\w*|touch\w*|"
    r"gener\w*|port\w*|se fai\w*|qui|en provenance|depuis|sur|par|pour|parmi|via|fait|faite|faites|faits)\b"
)
_SINGLE_QUOTED = re.compile(r"(?<![\w])'(?P<q>[^']{1,200}?)'(?![\w])")
_QUOTED = re.compile(
    r"(?:contenant|contient|contiennent|avec|mentionnant|incluant|qui parlent? de|sur)?\s*(?:le mot |le texte |la chaine )?[\"«]\s*(?P<q>[^\"»]{1,200}?)\s*[\"»]"
)
NUMBER = re.compile(
    r"(?<![\w.])(?P<n>\d{1,4}|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")(?![\w.])"
)
_SCHEMA_OBJECT = re.compile(r"(?<![\w$#.])(?P<s>[A-Za-z_][\w$#]*)\.(?P<o>[A-Za-z_][\w$#]*)(?![\w$#.])")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_$#.@-]*[A-Za-z0-9_$#]|[A-Za-z]")
BOUNDARY = re.compile(
    r"[,;?.!]|(?<![\w])(?:par|pour|depuis|entre|hier|aujourd'hui|cette|ce|cet|durant|pendant|dans|en|avec|qui|dont|mais)(?![\w])"
)
ACTION_NOUN_FIELDS = {"action_name": "actions?|operations?|commandes?|commandes? sql|ordres? sql",
                       "sql_text": "requetes?"}  # fmt: skip
KIND_OF_CATEGORY = {
    "index": "INDEX",
    "temporary": "TABLE",
    "table": "TABLE",
    "view": "VIEW",
    "procedure": "PROCEDURE",
}
SAME_FIELDS = {r"object_name": ["object_name"], r"object_schema": ["object_schema"],
               r"objet(?!_)|table": ["object_schema", "object_name"], r"(?<!object_)schema": ["object_schema"],
               r"utilisateur|user|compte": ["dbusername"], r"session": ["session_id"],
               r"machine|poste|host": ["userhost"]}  # fmt: skip
NUM_WORDS = {**NUMBERS, "dix": 10, "cent": 100}


@dataclass
class Item:
    start: int
    end: int
    kind: str
    value: Any = None
    negated: bool = False
    asked: bool = False


class Text:
    """The folded question, with the characters already read by a rule."""

    def __init__(self, question: str) -> None:
        self.raw = question.strip()
        self.low = fold(self.raw)
        self.used = bytearray(len(self.low))
        self.items: list[Item] = []
        self.now: datetime | None = None
        self.tz: ZoneInfo | None = None

    def free(self, start: int, end: int) -> bool:
        return not any(self.used[start:end])

    def take(self, start: int, end: int) -> None:
        self.used[start:end] = b"\x01" * (end - start)

    def visible(self, mark: bool = False) -> str:
        """The words not read yet; `mark` leaves a sign where a named value was, so that "depuis pc-x hier"
        does not become "depuis hier"."""
        if not mark:
            return "".join(" " if u else c for c, u in zip(self.low, self.used, strict=True))
        chars = list(self.visible())
        for item in self.of("value"):
            chars[item.start] = "\u00a7"
        return "".join(chars)

    def matches(self, rx: re.Pattern[str]) -> list[re.Match[str]]:
        text = self.visible()
        return [m for m in rx.finditer(text) if m.end() > m.start() and self.free(m.start(), m.end())]

    def add(self, m: re.Match[str] | tuple[int, int], kind: str, value: Any = None) -> Item:
        start, end = (m.start(), m.end()) if isinstance(m, re.Match) else m
        self.take(start, end)
        item = Item(start, end, kind, value)
        self.items.append(item)
        return item

    def of(self, kind: str) -> list[Item]:
        return sorted((i for i in self.items if i.kind == kind), key=lambda i: i.start)

    def before(self, pos: int, n: int = 30) -> str:
        return self.low[max(0, pos - n) : pos]

    def after(self, pos: int, n: int = 30) -> str:
        return self.low[pos : pos + n]


def number_of(word: str) -> int | None:
    word = word.strip()
    if word.isdigit():
        return int(word)
    return NUM_WORDS.get(word)


# --------------------------------------------------------------------------- the rules, in order


def read_sql_words(t: Text) -> None:
    """SQL typed as words: GROUP BY, LIKE '%x%', MAX(EVENT_TIMESTAMP), IS NOT NULL."""
    for m in _SQL_COUNT_DISTINCT.finditer(t.low):  # "COUNT(DISTINCT USERHOST)": the words, same length
        t.low = t.low[: m.start()] + re.sub(r"[()]", " ", m.group()) + t.low[m.end() :]
    for m in _SQL_GROUP_BY.finditer(t.low):
        t.low = t.low[: m.start()] + "par" + " " * (m.end() - m.start() - 3) + t.low[m.end() :]
    for m in _SQL_LIKE.finditer(t.low):
        if t.free(m.start(), m.end()):
            t.add(m, "contains", t.raw[m.start("q") : m.end("q")])
    for m in _SQL_AGG.finditer(t.low):
        if t.free(m.start(), m.end()):
            f = m["f"] or m["f2"]
            t.add(m, {"max": "LAST_WORDS", "min": "FIRST_WORDS", "count": "COUNT_WORDS"}[f])
    for m in _NOT_NULL.finditer(t.low):
        t.take(m.start(), m.end())
        t.add((m.start(), m.start()), "NOT_NULL")


def read_hours(t: Text) -> None:
    for m in t.matches(R["HOUR_WINDOW"]):
        named = {"minuit": 0, "midi": 12}
        a = int(m["a"]) if m["a"] else named[m["am0"]]
        b = int(m["b"]) if m["b"] else {"minuit": 24, "midi": 12}[m["bm0"]]
        minutes = any(int(m[g]) for g in ("am", "bm") if m[g])  # "9h30": a window holds whole hours only
        if (
            a <= 24
            and b <= 24
            and not minutes
            and (a > b or not re.search(r"\d{1,2}\s*(?:h|heures?)", t.low[m.end() : m.end() + 8]))
        ):
            t.add(m, "hours", (a % 24, b if b else 24) if a != b else None)
    for m in t.matches(R["HOUR_AFTER"]):
        t.add(m, "hours", (int(m["a"]) % 24, 24))
    for m in t.matches(R["HOUR_BEFORE"]):
        t.add(m, "hours", (0, int(m["b"])))
    for m in t.matches(R["OFF_HOURS"]):
        t.add(m, "off_hours", True)
    for m in t.matches(R["IN_HOURS"]):
        t.add(m, "off_hours", False)


_WEEKEND = re.compile(
    r"(?:le |ce |du |au |les? )?week-?ends?(?: (?:dernier|passe|precedent))?(?P<before> d'avant| precedent)?"
)
_PREVIOUS = re.compile(
    r"(?:a |aux |au |les |la |le )?(?:(?:\d+ )?(?:jours?|semaines?|mois|heures?) )?(?:precedente?s?|d'avant)|(?:a |a la )?periode precedente"
)


def _weekend(t: Text, now: datetime, tz: ZoneInfo) -> None:
    """ "le week-end dernier" (or "ce week-end" at the weekend): Saturday 00:00 to Monday 00:00."""
    for m in _WEEKEND.finditer(t.low):
        if not t.free(m.start(), m.end()):
            continue
        today = now.astimezone(tz).date()
        saturday = today - timedelta(days=(today.weekday() - 5) % 7)
        if m["before"]:
            saturday -= timedelta(days=7)
        start = datetime.combine(saturday, dt_time(), tzinfo=tz)
        t.add(
            m,
            "period",
            Period(start=start, end=start + timedelta(days=2), label=t.raw[m.start() : m.end()].strip()),
        )


def _previous_period(t: Text) -> None:
    """ "comparé aux 7 jours précédents", "... au WE d'avant": the period just before the first one."""
    periods = t.of("period")
    if len(periods) != 1 or periods[0].value is None:
        return
    first: Period = periods[0].value
    for m in t.matches(_PREVIOUS):
        if first.start and first.end:
            unit = re.search(
                r"\b(?:jours?|heures?|periode)\b", m.group(0)
            )  # "aux 2 jours précédents": that length
            span = first.end - first.start
            start, end = (
                (first.start - span, first.start)
                if unit
                else _calendar_before(first, t.tz or ZoneInfo("UTC"))
            )
            t.add(m, "period", Period(start=start, end=end, label=t.raw[m.start() : m.end()].strip()))
        return


_WEEKDAY_NAME = re.compile(r"\b(?:" + "|".join(WEEKDAYS) + r"|week-?ends?)\b")


def _calendar_before(period: Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The period "before" this one in the unit it was named in: the previous calendar month or year,
    the same days a week earlier for a weekend or a weekday ("le week-end dernier vs le précédent"),
    else the same length just before."""
    assert period.start is not None and period.end is not None
    lo, hi = period.start.astimezone(tz), period.end.astimezone(tz)
    midnights = lo.time() == hi.time() == dt_time()
    if midnights and lo.day == 1 and hi.day == 1 and lo.month == 1 and hi.year == lo.year + 1:
        return lo.replace(year=lo.year - 1), lo  # a year
    if (
        midnights
        and lo.day == 1
        and hi.day == 1
        and (hi.year * 12 + hi.month) - (lo.year * 12 + lo.month) == 1
    ):
        before = (lo.replace(day=1) - timedelta(days=1)).replace(day=1)
        return before, lo  # a calendar month
    if midnights and (hi - lo) <= timedelta(days=2) and _WEEKDAY_NAME.search(fold(period.label or "")):
        week = timedelta(days=7)
        return (lo.replace(tzinfo=None) - week).replace(tzinfo=tz), (hi.replace(tzinfo=None) - week).replace(
            tzinfo=tz
        )
    span = period.end - period.start
    return period.start - span, period.start


_NIGHT_OF = re.compile(
    r"(?:la |dans la )?nuit (?:de|du) (?P<a>"
    + "|".join(WEEKDAYS)
    + r") (?:a|au) (?P<b>"
    + "|".join(WEEKDAYS)
    + r")"
)


def read_periods(t: Text, now: datetime, tz: ZoneInfo) -> None:
    for m in _IN_PROGRESS.finditer(t.low):  # "la semaine en cours" = "cette semaine"
        today = now.astimezone(tz).date()
        unit = m["u"]
        if unit == "semaine":
            first = today - timedelta(days=today.weekday())
            last = first + timedelta(days=7)
        elif unit == "mois":
            first = today.replace(day=1)
            last = (first + timedelta(days=32)).replace(day=1)
        elif unit == "annee":
            first, last = today.replace(month=1, day=1), today.replace(year=today.year + 1, month=1, day=1)
        else:
            first, last = today, today + timedelta(days=1)
        start, end = (datetime.combine(d, dt_time(), tzinfo=tz) for d in (first, last))
        t.add(m, "period", Period(start=start, end=end, label=t.raw[m.start() : m.end()].strip()))
    for m in _NIGHT_OF.finditer(t.low):  # "la nuit de mardi à mercredi": Wednesday 00:00-06:00
        today = now.astimezone(tz).date()
        day = today - timedelta(days=(today.weekday() - WEEKDAYS[m["b"]]) % 7)
        start = datetime.combine(day, dt_time(), tzinfo=tz)
        t.add(
            m, "period", Period(start=start, end=start + timedelta(hours=6), label=t.raw[m.start() : m.end()])
        )
    _weekend(t, now, tz)
    for m in _WEEKDAY_BEFORE_DATE.finditer(t.low):  # "le lundi 23 novembre": the date wins
        t.take(m.start(), m.end())
    for _ in range(2 - len(t.of("period"))):
        found = parse_time(t.visible(mark=True), now=now, tz=tz, folded=True)
        if found is None:
            break
        start, end = found.span
        if found.invalid:
            t.add((start, end), "invalid_date", t.raw[start:end])
            continue
        period = (
            None
            if found.all_time
            else Period(start=found.start, end=found.end, label=t.raw[start:end].strip())
        )
        if period and period.start and period.end and period.end <= period.start:
            t.add((start, end), "invalid_date", t.raw[start:end])
            continue
        t.add((start, end), "period", period)
    if t.of("period"):
        _previous_period(t)
    for rx, hours in _DAYPART_RX:
        for m in t.matches(rx):
            t.add(m, "hours", hours)


def read_literals(t: Text, gaz: Gazetteer) -> None:
    for rx, code in _ORA_MESSAGE_RX:
        for m in t.matches(rx):
            t.add(m, "value", ("return_code", code, True))
    for m in _COLUMN_OP.finditer(t.raw):
        if not t.free(m.start(), m.end()):
            continue
        col = fold_key(m["col"])
        fld = next((f for rx, f in _FIELD_RX if rx.fullmatch(col)), None)
        if fld is None:
            continue
        raw_vals = re.findall(r"'([^']*)'|\"([^\"]*)\"|([\w$#.@-]+)", t.raw[m.start("vals") : m.end("vals")])
        vals = [next(v for v in g if v) for g in raw_vals if any(g)]
        negated = m["op"].lower() in ("!=", "<>", "not in")
        for v in vals:
            value: Any = int(v) if fld in INT_FIELDS and v.lstrip("-").isdigit() else v
            if fld == "return_code" and value == 0 and negated:
                t.add(m, "failed", True)
                continue
            item = t.add(m, "value", (fld, value, False))
            item.negated = negated
    for rx in (_QUOTED, _SINGLE_QUOTED):
        for m in rx.finditer(t.low):
            if t.free(m.start(), m.end()):
                quoted = t.raw[m.start("q") : m.end("q")]
                head = t.low[: m.start()].rstrip()
                word = next(
                    (w for rx2, _ in _FIELD_RX for w in rx2.finditer(head) if w.end() == len(head)), None
                )
                fld = next((f for rx2, f in _FIELD_RX if word and rx2.fullmatch(word.group(0))), None)
                if word and fld and fld != "sql_text":  # "l'utilisateur os 'root'": a value of that column
                    t.take(word.start(), word.end())
                    t.add(
                        m,
                        "value",
                        (fld, int(quoted) if fld in INT_FIELDS and quoted.isdigit() else quoted, False),
                    )
                elif (hit := gaz.lookup(fold_key(quoted))) and not re.match(
                    r"\W*(?:contenant|contient|contiennent|mentionnant|incluant|qui parlent? de|(?:avec )?le (?:mot|texte))",
                    t.low[m.start() :],
                ):
                    fld = _pick(hit)  # "avec « Toad »": a known program, not SQL text
                    t.add(m, "value", (fld, hit[fld][0], False))
                else:
                    t.add(m, "contains", quoted)
    for m in _CONTAINS_VERB.finditer(t.raw):
        action = any(rx.fullmatch(fold(m["q"])) for rx, cats, acts, _ in _CATEGORY_RX if cats or acts)
        if action and m.group(0).lower().startswith("avec un"):
            continue  # "avec un LOGON mais pas de LOGOFF": the action, not SQL text
        if t.free(m.start(), m.end()):
            t.add(m, "contains", m["q"])
    for m in _SCHEMA_OBJECT.finditer(t.raw):
        schema, obj = gaz.canonical("object_schema", m["s"]), gaz.canonical("object_name", m["o"])
        if schema and t.free(m.start(), m.end()):
            t.add(m, "value", ("object_schema", schema, False))
            t.add(m, "value", ("object_name", obj or m["o"].upper(), False))
    for m in t.matches(R["ORA_CODE"]):
        t.add(m, "value", ("return_code", int(m["code"] or m["code2"]), True))


def read_categories(t: Text, gaz: Gazetteer) -> None:
    actions = [str(a) for a in gaz.values.get("action_name", [])]
    for rx, cats, acts, note in _CATEGORY_RX:
        for m in t.matches(rx):
            named = (m.group(0).upper(),) if acts == ("<literal>",) else acts
            if named == ("EXECUTE",) and not t.raw[m.start() : m.end()].isupper():
                continue  # "exécuté" is a French verb, EXECUTE an Oracle action
            resolved: list[str] = []
            for a in named:
                if a.endswith("*"):
                    resolved += [x for x in actions if x.startswith(a[:-1])] or [a[:-1]]
                else:
                    resolved.append(a)
            t.add(m, "category", (cats, tuple(resolved), note))


def read_account_classes(t: Text, gaz: Gazetteer) -> None:
    """ "comptes applicatifs", "comptes de service": the stored users of that class."""
    users = [str(u) for u in gaz.values.get("dbusername", [])]
    for rx, parts in ACCOUNT_CLASSES:
        for m in t.matches(rx):
            named = re.match(r"\s*(?:comme |tels? que |:|\()?\s*([A-Za-z][\w$#]*)", t.raw[m.end() :])
            if named and gaz.canonical("dbusername", named.group(1)):
                # "les comptes de service MONITOR et ETL_BATCH", "(HR_APP, SALES_APP)": the names say it
                if re.search(r"\bpar\s*$", t.before(m.start(), 6)):
                    t.add(m, "field", "dbusername")  # "par compte applicatif (A, B)": per account
                else:
                    t.take(m.start(), m.end())
                continue
            for user in accounts_of_class(users, parts):
                t.add(m, "value", ("dbusername", user, False))
            t.add(
                m,
                "class_note",
                f"« {t.raw[m.start() : m.end()]} » lu comme : {', '.join(accounts_of_class(users, parts))}",
            )


def read_auth(t: Text) -> None:
    for rx, value in _AUTH_RX:
        for m in t.matches(rx):
            t.add(m, "value", ("authentication_type", value, False))


_EITHER_OUTCOME = re.compile(
    r"\(?\s*(?:(?:reussie?s?|abouti\w*|ok)\s+(?:ou|et|/)\s+(?:pas|non|echouee?s?|ratee?s?|ko|en echec)|"
    r"(?:echouee?s?|ratee?s?|ko)\s+(?:ou|et|/)\s+(?:pas|non|reussie?s?|ok)|quel qu'en soit le resultat|"
    r"(?:avec )?succes (?:ou|et) echecs?|echecs? (?:ou|et) succes)\s*\)?"
)


def read_outcome(t: Text) -> None:
    for m in _EITHER_OUTCOME.finditer(t.low):  # "(réussies ou pas)": both outcomes, no condition
        if t.free(m.start(), m.end()):
            t.take(m.start(), m.end())
    for m in t.matches(R["SUCCESS_WORDS"]):
        t.add(m, "failed", False)
    for m in t.matches(R["FAILED_WORDS"]):
        t.add(m, "failed", True)


def read_shape_words(t: Text) -> None:
    for m in re.finditer(r"\bni\b(?=.{1,40}\bni\b)|(?<=\S)\s+ni\b", t.low):  # "ni du DML ni du DDL"
        both = re.search(r"\bni\b.{1,40}\bni\b", t.low)
        start = t.low.index("ni", m.start())
        if both and t.free(start, start + 2):
            t.add((start, start + 2), "EXCLUDE_WORDS")
    for m in re.finditer(
        r"(?P<a>\b(?:d')?(?:une? autre|autres)) (?:\w+ ){1,2}?(?P<q>que)\b", t.low
    ):  # "un autre poste que X"
        if t.free(m.start("q"), m.end("q")) and t.free(m.start("a"), m.end("a")):
            t.add((m.start("q"), m.end("q")), "EXCLUDE_WORDS")
            t.take(m.start("a"), m.start("q"))  # the column word introduces the value after "que"
    for m in re.finditer(r"\bne\b.{0,30}?\bque\b", t.low):  # "ne sont lues que par X": only
        if t.free(m.start(), m.start() + 2) and t.free(m.end() - 3, m.end()):
            t.add((m.start(), m.start() + 2), "HAVING_ONLY")
            t.take(m.end() - 3, m.end())
    for m in re.finditer(lx.COLUMN_CONDITION, t.low):
        t.take(m.start(), m.end())
    for name in ("WHO_WHAT", "WHAT_DONE", "SAME_WORDS", "SESSION_OPEN", "COVERAGE_WORDS", "EXCLUDE_WORDS", "SHARE_WORDS", "HAVING_BOTH", "HAVING_ONLY",
                 "HAVING_NEVER", "SEQUENCE_WORDS", "SEQUENCE_BACK", "COMPARE_WORDS", "FIRST_WORDS", "DURATION_WORDS", "RANK_LEAST",
                 "RANK_MOST", "DISTINCT_WORDS", "LAST_WORDS", "DETAIL_WORDS", "COUNT_WORDS"):  # fmt: skip
        for m in t.matches(R[name]):
            t.add(m, name)


_THRESHOLD_OPS = {"plus de": "gt", "plus d'": "gt", "superieur a": "gt", "superieure a": "gt", ">": "gt", "depassant": "gt",
                  "depasse": "gt", "excedant": "gt", "au-dela de": "gt", "au moins": "gte", ">=": "gte",
                  "moins de": "lt", "inferieur a": "lt", "inferieure a": "lt", "<": "lt", "au plus": "lte",
                  "<=": "lte"}  # fmt: skip


_DURATION_UNIT = re.compile(r"\s*(?P<u>demi-heures?|minutes?|mins?\b|mn\b|heures?|h\b|secondes?|sec\b|s\b)")
_UNIT_SECONDS = {"demi": 1800, "mi": 60, "mn": 60, "h": 3600, "s": 1}


def _window_minutes(m: re.Match[str]) -> int:
    unit, n = m["unit"], (number_of(m["w"]) if m["w"] else 1) or 1
    if unit.startswith("quart"):
        return 15
    if unit.startswith("h"):
        return n * 60
    if unit.startswith("s"):
        return max(1, n // 60)
    return n


def read_threshold(t: Text) -> None:
    """ "plus de 100 requêtes", with its window when one is said ("en 5 minutes", "/10min")."""
    for m in t.matches(R["THRESHOLD"]):
        op, n = _THRESHOLD_OPS.get(m["op"], "gt"), number_of(m["n"]) or 1
        unit = _DURATION_UNIT.match(t.low, m.end())
        if unit and op == "lt" and R["SEQUENCE_BACK"].match(t.low, unit.end() + 1):
            # "un DROP moins de 10 minutes après un CREATE", "(moins de 5 min)": the window of a sequence
            seconds = n * next(v for k, v in _UNIT_SECONDS.items() if unit["u"].startswith(k))
            t.add((m.start(), unit.end()), "window", max(1, seconds // 60))
            continue
        if unit:  # "plus d'une demi-heure", "plus de 30 minutes": a session's duration, in seconds
            seconds = n * next(v for k, v in _UNIT_SECONDS.items() if unit["u"].startswith(k))
            t.add((m.start(), unit.end()), "duration_threshold", Threshold(op=op, value=seconds))  # type: ignore[arg-type]
            continue
        t.add(m, "threshold", Threshold(op=op, value=n))  # type: ignore[arg-type]
    for m in re.finditer(r"\bpuis(?= par\b)", t.low):  # "par jour puis par heure": two groupings
        t.take(m.start(), m.end())
    if t.of("window"):
        return
    if t.of("threshold") or R["SEQUENCE_WORDS"].search(t.visible()) or R["SEQUENCE_BACK"].search(t.visible()):
        for m in t.matches(R["WINDOW"]):
            t.add(m, "window", _window_minutes(m))
            break


_TREND = re.compile(r"\b(?:evolution|tendance|courbe)s?\b")
_PER_PERIOD = re.compile(r"\b(?:quotidien\w*|journalier\w*|hebdomadaire\w*|mensuel\w*)")
_PER_PERIOD_AFTER = re.compile(
    r"\b(?:evolution|tendance|courbe|nombre|volume|total|decompte|comptage|activite|repartition)s? $"
)
_PER_PERIOD_BUCKET = {"quot": "day", "jour": "day", "hebd": "week", "mens": "month"}


def read_fields(t: Text) -> None:
    for m in t.matches(R["PEAK_WORDS"]):
        t.add(m, "bucket", "hour")
    for m in re.finditer(
        r"(?:\bpour |\bde |\bpar |^\W*|, ?)(?:chaque|chacun(?:e)? des)\b", t.low
    ):  # "pour chaque X": a grouping
        t.take(m.start(), m.end())
    for m in t.matches(re.compile(r"\b(?P<u>heure|jour|semaine|mois) par (?P=u)\b")):  # "heure par heure"
        t.add(m, "bucket", {"heure": "hour", "jour": "day", "semaine": "week", "mois": "month"}[m["u"]])
    for rx, bucket in BUCKET_RX:
        for m in t.matches(rx):
            if re.search(
                r"(?:par|pour chaque|selon|chaque|quel(?:le)?s?|\w \bx)\s*$", t.before(m.start(), 14)
            ) or (
                re.fullmatch(r"\s*(?:les|(?:la )?liste des)\s*", t.low[: m.start()])
                and re.match(
                    r"\s+(?:de|d'|du|ou|avec|ayant|qui|dont|pendant|durant|en|ce|cette)\b", t.low[m.end() :]
                )
            ):  # "les jours de novembre avec plus de 95 connexions": which days
                t.add(m, "bucket", bucket)
    for m in t.matches(_PER_PERIOD):  # "évolution quotidienne", "nombre hebdomadaire de connexions"
        noun = _PER_PERIOD_AFTER.search(t.before(m.start(), 16))
        if noun:
            t.add(m, "bucket", _PER_PERIOD_BUCKET[m.group(0)[:4]])
            start = m.start() - len(noun.group(0))
            if t.free(start, m.start()):
                t.take(start, m.start())  # "volume", "évolution": what the grouping shows
    if any(i.value in ("hour", "weekday", "day", "week", "month") for i in t.of("bucket")):
        for m in t.matches(_TREND):  # "évolution par jour": the grouping says it
            t.take(m.start(), m.end())
    for rx, fld in _FIELD_RX:
        for m in t.matches(rx):
            typed = t.raw[m.start() : m.end()]
            if t.low[m.end() : m.end() + 1] in ("-", "_"):
                continue  # "pc" of "pc-durand": part of a name
            previous_word = re.search(r"(\S+)\s+$", t.low[: m.start()])
            if (
                typed.isupper()
                and "_" not in typed
                and previous_word
                and any(rx2.fullmatch(previous_word.group(1)) for rx2, _ in _FIELD_RX)
            ):
                continue  # "la table CLIENTS": a name, not the word "clients"
            t.add(m, "field", fld)


_CAPS_IDENT = re.compile(r"^[A-Z0-9_$#.@-]*[A-Z][A-Z0-9_$#.@-]*$")


def read_compound_values(t: Text, gaz: Gazetteer) -> None:
    """Stored values spelled with - _ . $ # or digits (pc-aroux, WS-EXT-4471), and system privileges
    ("GRANT ANY ROLE"), before any word rule."""
    for width in range(min(gaz.max_words, 4), 1, -1):  # "SQL Developer", "JDBC Thin Client"
        words = list(re.finditer(r"\S+", t.low))
        for i in range(len(words) - width + 1):
            start, end = words[i].start(), words[i + width - 1].end()
            while end > start and t.low[end - 1] in "?!.,;:":
                end -= 1
            key = fold_key(t.low[start:end])
            hit = gaz.lookup(key) if " " in key else None
            if hit and t.free(start, end):
                fld = _pick(hit)
                t.add((start, end), "value", (fld, hit[fld][0], False))
    actions = set(gaz.values.get("action_name", []))
    for value in gaz.values.get("system_privilege_used", []):
        for m in re.finditer(r"(?<!\w)" + re.escape(fold_key(str(value))) + r"(?!\w)", t.low):
            # "ALTER USER" is an action and a privilege: the privilege only when called one.
            said_privilege = re.search(r"privileges?(?: systemes?)?(?: utilises?)?\W*$", t.low[: m.start()])
            if value in actions and not said_privilege:
                continue
            if t.free(m.start(), m.end()):
                t.add(m, "value", ("system_privilege_used", value, False))
    for m in _IDENT.finditer(t.raw):
        typed = m.group(0)
        if re.search(r"[-_.$#@\d]", typed) and t.free(m.start(), m.end()):
            hit = gaz.lookup(fold_key(typed))
            if hit:
                fld = _pick(hit)
                t.add(m, "value", (fld, hit[fld][0], False))


def read_values(t: Text, gaz: Gazetteer, prefer: tuple[str, ...] = ()) -> None:
    """Values present in the trail, and values named right after their column word. A value known in
    several columns (HR: a user and a schema) is read in the column its context names ("sur HR":
    the schema), else in one of `prefer` (the previous question's, for "et pour HR ?")."""
    for m in re.finditer(r"\d+", t.low):
        item = _field_before(t, m.start())
        if item is not None and item.value in INT_FIELDS and t.free(m.start(), m.end()):
            item.kind = "introducer"
            t.add(m, "value", (item.value, int(m.group(0)), False))
        elif (
            "return_code" in prefer[:1]
            and re.fullmatch(r"\d{3,5}", m.group(0))
            and t.free(m.start(), m.end())
        ):
            t.add(m, "value", ("return_code", int(m.group(0)), False))  # "sans les 1017" after errors by code
    spans = [(m.start(), m.end()) for m in _IDENT.finditer(t.raw) if t.free(m.start(), m.end())]
    i = 0
    while i < len(spans):
        done = False
        for width in range(min(gaz.max_words, 4), 0, -1):
            if i + width > len(spans):
                continue
            start, end = spans[i][0], spans[i + width - 1][1]
            if not t.free(start, end):
                continue
            key = fold_key(t.raw[start:end])
            hit = gaz.lookup(key)
            if not hit:
                continue
            typed = t.raw[start:end]
            field_item = _field_before(t, start)
            if key in lx.COMMON_VALUES and not _CAPS_IDENT.match(typed) and field_item is None:
                continue
            if field_item and field_item.value in hit:
                fld = field_item.value
            elif (
                len(hit) > 1
                and "object_schema" in hit
                and _SCHEMA_BEFORE.search(t.low[:start])
                and not any("logon" in c.value[0] for c in t.of("category"))  # "connexion échouée sur SYSTEM"
            ):
                fld = "object_schema"
            else:
                fld = _pick(hit, prefer)
            if field_item and field_item.value in hit:
                field_item.kind = "introducer"
            t.add((start, end), "value", (fld, hit[fld][0], False))
            i += width
            done = True
            break
        if done:
            continue
        start, end = spans[i]
        typed = t.raw[start:end]
        field_item = _field_before(t, start)
        context = re.search(
            r"(?:^|\s)(depuis|avec|via|sous)\s+(?:le |la |l')?$", t.low[max(0, start - 14) : start]
        )
        looks_named = typed[:1].isupper() or re.search(r"[-_\d.]", typed)
        if field_item is None and context and looks_named and fold(typed) not in lx.FILLERS:
            fld = (
                "userhost"
                if context.group(1) == "depuis" and re.search(r"[-_\d.]", typed)
                else "client_program_name"
            )
            t.add(
                (start, end), "value", (fld, typed, False)
            )  # "depuis pc-durand", "avec DBeaver": named, absent
            i += 1
            continue
        if (
            field_item is not None
            and field_item.value not in ("sql_text",)
            and fold(typed) not in lx.FILLERS
            and not R["EVENT_NOUNS"].fullmatch(fold(typed))
            and (
                _CAPS_IDENT.match(typed)
                or re.search(r"[\d_$#.]", typed)
                # "le poste pc-durand": a machine, a terminal or a program is often a hyphenated name
                or (
                    field_item.value in _NAMED_FIELDS
                    and re.fullmatch(r"\w+(?:-\w+)+", typed)
                    and not re.match(
                        r"(?i)(?:ci|la|celui|celle|ceux|anti|sus|peut|vis|au|non)-|.*-m[eê]mes?$", typed
                    )
                )
            )
        ):
            field_item.kind = "introducer"
            value: Any = int(typed) if field_item.value in INT_FIELDS and typed.isdigit() else typed.upper()
            if field_item.value in _NAMED_FIELDS:
                value = typed
            t.add((start, end), "value", (field_item.value, value, False))
        i += 1
    _read_list_members(t, gaz)


def _read_list_members(t: Text, gaz: Gazetteer) -> None:
    """ "ADM_LEFEBVRE et ADM_MOREAU": an identifier listed beside a value of a column is a value of
    that column, absent from the trail (stated with 0, never dropped). Not when it looks like a typo
    of a known value, nor in a list left out (leaving out an absent value would leave out nothing)."""
    for m in _IDENT.finditer(t.raw):
        typed = m.group(0)
        if not t.free(m.start(), m.end()) or not (_CAPS_IDENT.match(typed) and re.search(r"[_\d]", typed)):
            continue
        if gaz.fuzzy(fold_key(typed)) is not None:
            continue
        values = t.of("value")
        side = next(
            (
                v
                for v in values
                if v.value[0] in ("dbusername", "object_schema", "object_name", "os_username")
                and (
                    (v.end <= m.start() and LIST_GAP.fullmatch(t.low[v.end : m.start()]))
                    or (v.start >= m.end() and LIST_GAP.fullmatch(t.low[m.end() : v.start]))
                )
                and re.search(r"\b(?:et|ou)\b|,", t.low[min(v.end, m.end()) : max(v.start, m.start())])
            ),
            None,
        )
        if side is None or side.negated:
            continue
        head = t.low[max(0, min(side.start, m.start()) - 40) : min(side.start, m.start())]
        if not R["EXCLUDE_WORDS"].search(head):
            t.add(m, "value", (side.value[0], typed.upper(), False))


_NAMED_FIELDS = ("userhost", "os_username", "client_program_name", "terminal")  # names kept as typed
_POSTFIX_EXCLUDED = re.compile(
    r"\s*,?\s*(?:exclue?s?|non compris|non comprise?s?|non inclue?s?|mise?s? a part|mise?s? de cote)\b"
)


def read_postfix_exclusions(t: Text) -> None:
    """ "DML sur FINANCE, FIN_APP exclu": the value right before the word is left out."""
    for ex in t.of("EXCLUDE_WORDS"):
        before = [v for v in t.of("value") if v.end <= ex.start]
        if before and _POSTFIX_EXCLUDED.fullmatch(t.low[before[-1].end : ex.end]):
            listed = [before.pop()]  # "SYS et SYSTEM exclus": the whole list
            while before and LIST_GAP.fullmatch(t.low[before[-1].end : listed[-1].start]):
                listed.append(before.pop())
            for v in listed:
                v.negated = True
            ex.kind = "postfix_exclusion"


def _field_before(t: Text, pos: int) -> Item | None:
    """The column word right before `pos` ("le schéma XYZ", "utilisateur SCOTT", "DBUSERNAME XYZ")."""
    for item in t.of("field"):
        gap = t.low[item.end : pos]
        if 0 <= pos - item.end <= 4 and re.fullmatch(r"\s*(?::|=|nomme|appele)?\s*", gap):
            return item
    return None


_SCHEMA_BEFORE = re.compile(r"\b(?:sur|dans)\s+(?:le |les )?(?:objets? (?:de |d')?)?$")


def _pick(hit: dict[str, list[str]], prefer: tuple[str, ...] = ()) -> str:
    return next((f for f in (*prefer, *lx.VALUE_PRIORITY) if f in hit), next(iter(hit)))
