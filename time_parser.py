# ruff: noqa: E501 (regular-expression tables read better unwrapped)
"""French time expressions → an interval [start, end) in the app's time zone.

Rules on accent-folded text (see `fold`), chosen by measurement over dateparser and Duckling
(README, "Question analysis"): dateparser returns points, not ranges, and misses "ce matin",
"la semaine dernière", "les 3 derniers jours", "entre le 1er et le 5 août"; Duckling returns
ranges but prefers the future ("lundi" → next Monday, "le 3 mars" → next year) and drops
"depuis". These rules take about 20 µs a question.

Conventions (documented for users):
- calendar periods are whole: "hier" = [yesterday 00:00, today 00:00), "cette semaine" = [Monday,
  next Monday), "en août" = [1 Aug, 1 Sep) of the last August that has begun;
- parts of a day: nuit 00–06, matin 06–12, après-midi 12–18, soir 18–24;
- "les N derniers jours / heures / semaines / mois", "depuis N jours": rolling, ending now;
- "depuis X", "après X", "à partir de X": from the start of X up to now; "avant X": up to X;
- a bare weekday or a date without a year means the last one (today included); "vendredi dernier"
  on a Friday is a week ago;
- "entre le X et le Y" / "du X au Y": both days included.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "«": '"', "»": '"', "\u00a0": " "})


def fold(text: str) -> str:
    """Lower case without accents, one character for one character (spans stay valid)."""
    out = []
    for ch in text.translate(_APOSTROPHES):
        base = unicodedata.normalize("NFD", ch)[0] if ord(ch) > 127 else ch
        out.append(base.lower() if len(base.lower()) == 1 else base)
    return "".join(out)


MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3, "avril": 4,
    "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "aout": 8, "septembre": 9, "sept": 9,
    "sep": 9, "octobre": 10, "oct": 10, "novembre": 11, "nov": 11, "decembre": 12, "dec": 12,
}  # fmt: skip
WEEKDAYS = {"lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6}
NUMBERS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8,
    "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15,
    "seize": 16, "vingt": 20, "trente": 30, "quarante-huit": 48, "soixante": 60,
}  # fmt: skip
PARTS = {"nuit": (0, 6), "matin": (6, 12), "matinee": (6, 12), "apres-midi": (12, 18),
         "apres midi": (12, 18), "aprem": (12, 18), "soir": (18, 24), "soiree": (18, 24)}  # fmt: skip

_MONTH = r"(?P<{n}>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_WD = "|".join(WEEKDAYS)
_NUM = r"(?:\d{1,3}|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + ")"
_PART = r"(?P<part>matinee|matin|apres[- ]midi|aprem|soiree|soir|nuit)"
_DAYNUM = r"(?:1er|premier|\d{1,2})"


@dataclass
class TimeMatch:
    start: datetime | None
    end: datetime | None
    span: tuple[int, int]  # in the folded text (= in the original text)
    invalid: bool = False  # an impossible date was named ("le 31 février"): that bound is left open
    all_time: bool = False  # "sur toute la période", "depuis le début": no time limit at all


class _Invalid:
    """An expression that names a date which does not exist ("le 31 février", "2025-02-30")."""


INVALID = _Invalid()
ALL_TIME = object()  # what `_apply` returns for "sur toute la période", "depuis le début"


def _num(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word]


def _day_num(word: str) -> int:
    return 1 if word in ("1er", "premier") else int(word)


class _Ctx:
    def __init__(self, now: datetime, tz: ZoneInfo) -> None:
        self.tz = tz
        self.now = now.astimezone(tz)
        self.today = self.now.date()

    def at(self, d: date, hour: int = 0, minute: int = 0) -> datetime:
        if hour >= 24:
            return datetime.combine(d + timedelta(days=1), time(0), tzinfo=self.tz)
        return datetime.combine(d, time(hour, minute), tzinfo=self.tz)

    def day(self, d: date) -> tuple[datetime, datetime]:
        return self.at(d), self.at(d + timedelta(days=1))

    def last_weekday(self, wd: int) -> date:
        return self.today - timedelta(days=(self.today.weekday() - wd) % 7)

    def last_date(self, day: int, month: int, year: int | None) -> date:
        """The date with this day and month; without a year, the last one not after today.
        Call only for a day/month pair that exists in some year (see `_exists`)."""
        if year is not None:
            return date(year if year > 100 else 2000 + year, month, day)
        y = self.today.year
        while not _valid(y, month, day) or date(y, month, day) > self.today:  # 29 February: the last one
            y -= 1
        return date(y, month, day)

    def month_range(self, year: int, month: int) -> tuple[datetime, datetime]:
        nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        return self.at(date(year, month, 1)), self.at(nxt)

    def last_month(self, month: int, year: int | None) -> tuple[datetime, datetime]:
        if year is None:
            year = self.today.year if month <= self.today.month else self.today.year - 1
        return self.month_range(year, month)


def _valid(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


def _exists(day: int, month: int, year: int | None = None) -> bool:
    """Whether this day of this month exists (in that year, or in some year)."""
    if year is not None:
        return _valid(year if year > 100 else 2000 + year, month, day)
    return _valid(2000, month, day)  # 2000 is a leap year: 29 February exists


def _minus_months(d: datetime, n: int) -> datetime:
    m = d.month - 1 - n
    y, m = d.year + m // 12, m % 12 + 1
    day = d.day
    while not _valid(y, m, day):
        day -= 1
    return d.replace(year=y, month=m, day=day)


# A single day: "hier", "lundi", "le 15/01/2025", "le 3 mars 2025", "2025-08-01", "il y a 3 jours".
def _single_pattern(sfx: str = "") -> str:
    """The _SINGLE pattern with its group names suffixed (a range holds two of them)."""
    n = {
        k: k + sfx
        for k in (
            "single",
            "wd",
            "wdl",
            "iy",
            "im",
            "id",
            "ih",
            "imi",
            "d",
            "m",
            "y",
            "td",
            "tm",
            "ty",
            "ago",
        )
    }
    date_dmy = rf"(?P<{n['d']}>\d{{1,2}})[/.-](?P<{n['m']}>\d{{1,2}})(?:[/.-](?P<{n['y']}>\d{{4}}|\d{{2}}))?(?![\d/])"
    date_iso = (rf"(?P<{n['iy']}>\d{{4}})-(?P<{n['im']}>\d{{2}})-(?P<{n['id']}>\d{{2}})"
                rf"(?:[t ](?P<{n['ih']}>\d{{2}}):(?P<{n['imi']}>\d{{2}})(?::\d{{2}})?)?")  # fmt: skip
    date_text = (rf"(?:(?:{_WD})\s+)?(?P<{n['td']}>{_DAYNUM})\s+" + _MONTH.format(n=n["tm"])
                 + rf"(?:\s+(?P<{n['ty']}>\d{{4}}))?")  # fmt: skip
    return (
        rf"(?P<{n['single']}>avant[- ]hier|aujourd'?\s?hui|aujourdhui|today|hier|yesterday|(?:ce\s+)?(?P<{n['wd']}>{_WD})"
        rf"(?P<{n['wdl']}>\s+dernier)?|{date_iso}|{date_dmy}|{date_text}|il\s+y\s+a\s+(?P<{n['ago']}>{_NUM})\s+jours?)"
    )


_SINGLE = _single_pattern()


def _sub(g: dict, sfx: str) -> dict:
    """The groups of one suffixed _SINGLE, under their plain names."""
    return {k.removesuffix(sfx): v for k, v in g.items() if k.endswith(sfx)} if sfx else g


def _single_day(m: re.Match | dict, c: _Ctx, sfx: str = "") -> tuple[datetime, datetime] | _Invalid | None:
    """The day (or, for an ISO date-time, the hour) a _SINGLE match names; INVALID for a date that
    does not exist, None when the text is not a date after all."""
    g = _sub(m if isinstance(m, dict) else m.groupdict(), sfx)
    word = g.get("single") or ""
    if word.startswith("avant"):
        return c.day(c.today - timedelta(days=2))
    if word.startswith("aujourd") or word == "today":
        return c.day(c.today)
    if word in ("hier", "yesterday"):
        return c.day(c.today - timedelta(days=1))
    if g.get("wd"):
        day = c.last_weekday(WEEKDAYS[g["wd"]])
        if g.get("wdl") and day == c.today:  # "vendredi dernier" on a Friday: a week ago
            day -= timedelta(days=7)
        return c.day(day)
    if g.get("iy"):
        y, mo, d = int(g["iy"]), int(g["im"]), int(g["id"])
        if not _valid(y, mo, d):
            return INVALID
        if g.get("ih"):
            if int(g["ih"]) > 23 or int(g["imi"]) > 59:
                return INVALID
            start = c.at(date(y, mo, d), int(g["ih"]), int(g["imi"]))
            return start, start + timedelta(hours=1)
        return c.day(date(y, mo, d))
    if g.get("d"):
        y = int(g["y"]) if g.get("y") else None
        d, mo = int(g["d"]), int(g["m"])
        if not 1 <= mo <= 12 or not 1 <= d <= 31:
            return INVALID if y is not None else None  # "15/13/2025" is a date; "12.45" is not
        if not _exists(d, mo, y):
            return INVALID
        return c.day(c.last_date(d, mo, y))
    if g.get("td"):
        y = int(g["ty"]) if g.get("ty") else None
        d, mo = _day_num(g["td"]), MONTHS[g["tm"]]
        if not _exists(d, mo, y):
            return INVALID
        return c.day(c.last_date(d, mo, y))
    if g.get("ago"):
        return c.day(c.today - timedelta(days=_num(g["ago"])))
    return None


_RULES: list[tuple[str, re.Pattern]] = []


def _rule(name: str, pattern: str) -> None:
    _RULES.append((name, re.compile(r"(?<![\w/-])" + pattern + r"(?![\w/])")))


# "sur toute la période", "depuis le début", "depuis toujours": the whole trail (a follow-up drops its
# previous period). "depuis le début du mois / de la semaine" is `since_start`, not this.
_rule(
    "all_time",
    r"(?:(?:sur|pendant|durant|pour|dans)\s+)?(?:(?:toute|l'ensemble\s+de)\s+la\s+(?:periode|duree|piste(?:\s+d'audit)?)"
    r"|tout\s+l'historique|l'historique\s+complet|tout\s+le\s+temps|toutes\s+les\s+dates|toutes\s+les\s+periodes)"
    r"|(?:depuis|a\s+partir\s+d[eu])\s+(?:le\s+)?(?:debut|commencement|origine|l'origine)"
    r"(?:\s+(?:de\s+l'audit|de\s+la\s+piste|de\s+l'historique|des\s+traces|des\s+enregistrements|des\s+temps))?"
    r"(?!\s*(?:du|de|des|d')\b)(?!\s*d')"
    r"|depuis\s+toujours|de\s+tout\s+temps|(?:toutes\s+)?(?:dates|periodes)\s+confondues"
    r"|sans\s+(?:limite|restriction|filtre|borne)\s+(?:de\s+|d')?(?:temps|date|periode|duree)",
)
_RANGE_DAYS = (
    r"(?:entre\s+(?:le\s+)?|du\s+|de\s+)(?P<a>" + _DAYNUM + r")(?:\s+" + _MONTH.format(n="am")
    + r"(?:\s+(?P<ay>\d{4}))?)?\s+(?:et|au|a|jusqu'au)\s+(?:le\s+)?(?P<b>" + _DAYNUM + r")(?:\s+"
    + _MONTH.format(n="bm") + r"(?:\s+(?P<by>\d{4}))?)?"
)  # fmt: skip
_rule("range_days", _RANGE_DAYS)
_rule(
    "range_dates",
    r"(?:entre\s+(?:le\s+)?|du\s+|de\s+)(?P<x>[\d/.-]{8,10})\s+(?:et|au|a|jusqu'au)\s+(?:le\s+)?(?P<y2>[\d/.-]{8,10})",
)
_rule("relative_n", r"(?:(?:les|ces|dans\s+les|sur\s+les|pendant\s+les|au\s+cours\s+des)\s+)?(?P<n>" + _NUM
      + r")\s+(?:derniers|dernieres|dernier|derniere|passes|passees)\s+(?P<unit>jours?|heures?|h|semaines?|mois|minutes?|min)")  # fmt: skip
_rule("relative_n2", r"(?:les|ces|sur\s+les|pendant\s+les|au\s+cours\s+des)\s+(?:derniers|dernieres)\s+(?P<n>" + _NUM
      + r")\s*(?P<unit>jours?|heures?|h|semaines?|mois|minutes?|min)")  # fmt: skip
_rule(
    "over_n",
    r"(?:sur|pendant|durant|au\s+cours\s+d[ue]s?)\s+(?P<n>"
    + _NUM
    + r")\s+(?P<unit>jours|heures|semaines|mois|minutes)",
)
# "récemment", "ces derniers temps": said out loud as the last 7 days (the answer shows the dates)
_rule("recently", r"(?:ces\s+derniers\s+temps|(?:tres\s+)?recemment|dernierement|recente?s?)")
_rule("since_n", r"depuis\s+(?P<n>" + _NUM + r")\s*(?P<unit>jours?|heures?|h|semaines?|mois|minutes?|min)")
_rule(
    "last_unit",
    r"(?:la|les|ces|sur\s+la|dans\s+la|pendant\s+la|au\s+cours\s+de\s+la)\s+(?:derniere|dernieres)\s+(?P<unit>heure|24\s?h|minute)",
)
_rule(
    "hours_24",
    r"(?:les\s+|ces\s+|sur\s+les\s+)?(?:dernieres\s+)?(?P<n>24|48|72)\s?h(?:eures)?(?:\s+(?:dernieres|passees))?",
)
_rule(
    "range_any",  # "entre le 1er août et hier", "du 28 décembre 2024 au 3 janvier 2025"
    r"(?:entre\s+(?:le\s+|l')?|du\s+|depuis\s+le\s+|a\s+partir\s+du\s+)"
    + _single_pattern("_a")
    + r"\s+(?:et|au|jusqu'au|jusqu'a)\s+(?:le\s+|l')?"
    + _single_pattern("_b"),
)
_rule("since_year", r"(?P<kw>depuis|apres|avant|a\s+partir\s+de)\s+(?:l'annee\s+)?(?P<year>20\d{2})")
_rule(
    "since_month",
    r"(?P<kw>depuis|apres|a\s+partir\s+d[e']|avant)\s+(?:le\s+mois\s+d[e']\s*)?"
    + _MONTH.format(n="sm")
    + r"(?:\s+(?P<smy>\d{4}))?",
)
_rule(
    "day_part",
    r"(?:(?:le\s+|l')?" + _SINGLE + r"\s+(?:au\s+|dans\s+l[ae]\s+|en\s+|a\s+la\s+|l[ae]\s+)?" + _PART + ")",
)
_rule("this_part", r"(?P<this>ce(?:tte|t)?)\s+" + _PART)
_rule("last_night", r"(?:la\s+)?nuit\s+derniere")
_rule(
    "hour_range",
    r"(?:(?:le\s+|l')?"
    + _SINGLE
    + r"\s+)?(?:entre|de)\s+(?P<h1>\d{1,2})\s*h\s*(?P<mi1>\d{2})?\s+(?:et|a)\s+(?P<h2>\d{1,2})\s*h\s*(?P<mi2>\d{2})?",
)
_rule("since_start", r"depuis\s+le\s+debut\s+(?:du|de\s+la|de\s+l')\s*(?P<unit>semaine|mois|annee)")
_rule(
    "hour_range",
    r"(?:entre|de)\s+(?P<h1>\d{1,2})\s*h\s*(?P<mi1>\d{2})?\s+(?:et|a)\s+(?P<h2>\d{1,2})\s*h\s*(?P<mi2>\d{2})?"
    r"\s+(?:le\s+|l')?" + _SINGLE,
)
_rule(
    "this_period",
    r"(?P<which>cette|ce|cet|du|(?<!jour )(?<!jours )de\s+la|sur\s+le|sur\s+la|pour\s+le|pour\s+la)\s+(?P<unit>semaine|mois(?:-ci|\s+ci)?"
    r"|annee|week-?end)(?:-ci)?(?!\s+(?:derni|pass|precedent|d[eu]\b|d'))",
)
_rule(
    "last_period",
    r"(?:l[ae]\s+|l')?(?P<unit>semaine|mois|annee|an|week-?end)\s+(?:derniere?|passee?|precedente?)",
)
_rule(
    "in_month",
    r"(?:en|au\s+mois\s+d[e']|au\s+cours\s+du\s+mois\s+d[e']|durant|pendant|pour|sur|de|d'|du\s+mois\s+d[e'])\s*"
    + _MONTH.format(n="mm")
    + r"(?:\s+(?P<my>\d{4}))?",
)
_rule("in_year", r"(?:en|pour|durant|sur)\s+(?:l'annee\s+)?(?P<year>20\d{2})")
_rule(  # "semaine 47", "la semaine n° 3 de 2026": an ISO week, the last one with that number by default
    "iso_week",
    r"(?:(?:en|la|de\s+la|sur\s+la|pour\s+la)\s+)?(?:semaine|sem\.?|s)\s*(?:n°|no\.?|numero|n)?\s*(?P<wn>\d{1,2})\b"
    r"(?!\s*(?:h\b|heures?|jours?|semaines?|mois|derni|minutes?))(?:\s+(?:de\s+|d')?(?P<wy>20\d{2}))?",
)
_rule("week_of", r"(?:la\s+)?semaine\s+du\s+" + _SINGLE)  # "la semaine du 9 novembre": Monday to Sunday
_rule("single", r"(?:le\s+|l'|du\s+)?" + _SINGLE)
_rule(
    "day_of_last_month",
    r"(?:le|du)\s+(?P<dom>1er|premier|\d{1,2})\s+du\s+mois\s+(?:dernier|passe|precedent)",
)
_rule(
    "day_of_month",
    # "le premier" is a day only where no noun follows ("le premier événement" is the first one)
    r"(?:le|du)\s+(?P<dom>1er|premier(?=\s*(?:[?.!,;]|$|du\s+mois))|\d{1,2})(?:\s+(?:du|de\s+ce)\s+mois(?!\s+(?:derni|pass|prec)))?(?!\s*(?:h\b|heures?|:|/|\d|er\s+et|\s+(?:au|et)\b))",
)

# "dimanche 22": that day of this month (or of the last one if it is to come), said with its weekday
_rule(
    "weekday_dom", r"(?:le\s+)?(?P<wdd>" + _WD + r")\s+(?P<dom>1er|\d{1,2})(?!\s*(?:h\b|heures?|:|/|\d|er\b))"
)


def _month_of_day(c: _Ctx, d: int) -> int:
    """The month of "le 12" said alone: this one, or the last one when the 12th is yet to come."""
    return c.today.month if d <= c.today.day else (c.today.replace(day=1) - timedelta(days=1)).month


def _apply(name: str, m: re.Match, c: _Ctx) -> tuple[datetime | None, datetime | None] | _Invalid | None:
    g = m.groupdict()
    if name == "all_time":
        return ALL_TIME
    if name == "range_days":
        bm = MONTHS[g["bm"]] if g.get("bm") else None
        am = MONTHS[g["am"]] if g.get("am") else bm
        if am is None:
            am = bm = c.today.month
        by = int(g["by"]) if g.get("by") else None
        ay = int(g["ay"]) if g.get("ay") else by
        a, b = _day_num(g["a"]), _day_num(g["b"])
        if not _exists(b, bm, by):
            if not _exists(a, am, ay):
                return INVALID
            return c.at(c.last_date(a, am, ay)), None, True
        end_day = c.last_date(b, bm, by)
        if ay is None:
            ay = end_day.year if (am, a) <= (bm, b) else end_day.year - 1
        if not _exists(a, am, ay):
            return None, c.at(end_day + timedelta(days=1)), True
        return c.at(date(ay, am, a)), c.at(end_day + timedelta(days=1))
    if name == "range_dates":
        x, y = _parse_date(g["x"], c), _parse_date(g["y2"], c)
        return _bounds(x and (x if x is INVALID else c.day(x)), y and (y if y is INVALID else c.day(y)))
    if name == "range_any":
        return _bounds(_single_day(g, c, "_a"), _single_day(g, c, "_b"))
    if name == "since_year":
        y = int(g["year"])
        return (None, c.at(date(y, 1, 1))) if g["kw"] == "avant" else (c.at(date(y, 1, 1)), c.now)
    if name == "recently":
        return c.now - timedelta(days=7), c.now
    if name in ("relative_n", "relative_n2", "since_n", "over_n", "hours_24", "last_unit"):
        unit = (g.get("unit") or "h").replace(" ", "")
        n = _num(g["n"]) if g.get("n") else (24 if unit.startswith("24") else 1)
        if unit.startswith(("heure", "h", "24")):
            return c.now - timedelta(hours=n), c.now
        if unit.startswith("min"):
            return c.now - timedelta(minutes=n), c.now
        if unit.startswith("jour"):
            return c.now - timedelta(days=n), c.now
        if unit.startswith("semaine"):
            return c.now - timedelta(weeks=n), c.now
        return _minus_months(c.now, n), c.now
    if name == "since_month":
        start, _ = c.last_month(MONTHS[g["sm"]], int(g["smy"]) if g.get("smy") else None)
        return (None, start) if g["kw"] == "avant" else (start, c.now)
    if name == "day_part":
        day = _single_day(m, c)
        if day is None or day is INVALID:
            return day
        h1, h2 = PARTS[g["part"].replace("-", " ").replace("apres midi", "apres-midi")]
        d = day[0].date()
        return c.at(d, h1), c.at(d, h2)
    if name == "this_part":
        h1, h2 = PARTS[g["part"].replace(" ", "-") if g["part"].startswith("apres") else g["part"]]
        return c.at(c.today, h1), c.at(c.today, h2)
    if name == "last_night":
        return c.at(c.today, 0), c.at(c.today, 6)
    if name == "hour_range":
        day = _single_day(m, c) if g.get("single") else c.day(c.today)
        if day is None or day is INVALID:
            return day
        d = day[0].date()
        h1, h2 = int(g["h1"]), int(g["h2"])
        if h1 > 24 or h2 > 24:
            return None
        return c.at(d, h1, int(g["mi1"] or 0)), c.at(d, h2, int(g["mi2"] or 0))
    if name == "this_period":
        unit = g["unit"]
        if unit.startswith("semaine"):
            monday = c.today - timedelta(days=c.today.weekday())
            return c.at(monday), c.at(monday + timedelta(days=7))
        if unit.startswith("mois"):
            return c.month_range(c.today.year, c.today.month)
        if unit.startswith("annee"):
            return c.at(date(c.today.year, 1, 1)), c.at(date(c.today.year + 1, 1, 1))
        sat = c.last_weekday(5) if c.today.weekday() >= 5 else c.today + timedelta(days=5 - c.today.weekday())
        return c.at(sat), c.at(sat + timedelta(days=2))
    if name == "last_period":
        unit = g["unit"]
        if unit.startswith("semaine"):
            monday = c.today - timedelta(days=c.today.weekday() + 7)
            return c.at(monday), c.at(monday + timedelta(days=7))
        if unit.startswith("mois"):
            first = c.today.replace(day=1) - timedelta(days=1)
            return c.month_range(first.year, first.month)
        if unit.startswith("an"):
            return c.at(date(c.today.year - 1, 1, 1)), c.at(date(c.today.year, 1, 1))
        sat = c.today - timedelta(days=(c.today.weekday() - 5) % 7 or 7)
        if c.today.weekday() == 6:
            sat -= timedelta(days=7)
        return c.at(sat), c.at(sat + timedelta(days=2))
    if name == "in_month":
        return c.last_month(MONTHS[g["mm"]], int(g["my"]) if g.get("my") else None)
    if name == "in_year":
        y = int(g["year"])
        return c.at(date(y, 1, 1)), c.at(date(y + 1, 1, 1))
    if name == "single":
        return _single_day(m, c)
    if name == "iso_week":
        n, year = int(g["wn"]), int(g["wy"]) if g.get("wy") else c.today.year
        if not 1 <= n <= date(year, 12, 28).isocalendar()[1]:
            return INVALID
        monday = date.fromisocalendar(year, n, 1)
        if not g.get("wy") and monday > c.today:
            if n > date(year - 1, 12, 28).isocalendar()[1]:
                return INVALID
            monday = date.fromisocalendar(year - 1, n, 1)
        return c.at(monday), c.at(monday + timedelta(days=7))
    if name == "week_of":
        day = _single_day(m, c)
        if day is None or day is INVALID:
            return day
        monday = day[0].date() - timedelta(days=day[0].weekday())
        return c.at(monday), c.at(monday + timedelta(days=7))
    if name == "day_of_last_month":
        d = _day_num(g["dom"])
        last = c.today.replace(day=1) - timedelta(days=1)
        return c.day(date(last.year, last.month, d)) if _valid(last.year, last.month, d) else INVALID
    if name == "day_of_month":
        d = _day_num(g["dom"])
        if not 1 <= d <= 31:
            return None
        month = _month_of_day(c, d)
        return c.day(c.last_date(d, month, None)) if _valid(2000, month, d) else None
    if name == "weekday_dom":
        d = _day_num(g["dom"])
        if not 1 <= d <= 31:
            return None
        month = _month_of_day(c, d)
        if not _valid(2000, month, d):
            return INVALID
        named = c.last_date(d, month, None)
        return c.day(named) if named.weekday() == WEEKDAYS[g["wdd"]] else INVALID  # "lundi 22" is no date
    if name == "since_start":
        this = _apply("this_period", re.match(r"(?P<which>ce) (?P<unit>\w+)", "ce " + g["unit"]), c)
        return this[0], c.now
    return None


def _parse_date(text: str, c: _Ctx) -> date | _Invalid | None:
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if m:
        y, mo, d = map(int, m.groups())
    else:
        m = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2,4}))?", text)
        if not m:
            return None
        d, mo = int(m[1]), int(m[2])
        if not m[3]:
            return c.last_date(d, mo, None) if _exists(d, mo) else INVALID
        y = int(m[3]) if len(m[3]) == 4 else 2000 + int(m[3])
    return date(y, mo, d) if _valid(y, mo, d) else INVALID


def _bounds(a, b) -> tuple | _Invalid | None:
    """A range from day `a` to day `b` (both included); an impossible bound is left open and flagged."""
    if a is None or b is None:
        return None
    if a is INVALID and b is INVALID:
        return INVALID
    if a is INVALID:
        return None, b[1], True
    if b is INVALID:
        return a[0], None, True
    return a[0], b[1]


# "depuis ce matin", "à partir de la semaine dernière", "avant le 1er août", "jusqu'à hier": a bound
# word before a period turns it into an open interval (from its start up to now, or up to it).
_BOUND = re.compile(
    r"(?<![\w-])(?P<kw>depuis|apres|a\s+partir(?:\s+d[eu]|\s+de\s+la|\s+de\s+l'|\s+d')?"
    r"|a\s+compter(?:\s+d[eu]|\s+de\s+la|\s+d')?|avant|jusqu'(?:au|a|a\s+la|a\s+l'))\s*$"
)
_BOUNDABLE = {"single", "weekday_dom", "day_part", "this_part", "last_night", "this_period", "last_period", "in_month",
              "in_year", "day_of_month"}  # fmt: skip


def parse_time(text: str, *, now: datetime, tz: ZoneInfo, folded: bool = False) -> TimeMatch | None:
    """The first (leftmost, longest) time expression in `text`, or None."""
    low = text if folded else fold(text)
    if not any(ch.isdigit() for ch in low) and not _QUICK.search(low):
        return None
    c = _Ctx(now, tz)
    best: tuple[int, int, str, re.Match, object] | None = None
    for name, pattern in _RULES:
        for m in pattern.finditer(low):
            key = (m.start(), -(m.end() - m.start()))
            if best is None or key < (best[0], best[1]):
                value = _apply(name, m, c)
                if value is not None:
                    best = (*key, name, m, value)
            break
    if best is None:
        return None
    _, _, name, m, value = best
    span = (m.start(), m.end())
    if value is INVALID:
        return TimeMatch(None, None, span, invalid=True)
    if value is ALL_TIME:
        return TimeMatch(None, None, span, all_time=True)
    start, end, *flag = value
    bound = _BOUND.search(low, 0, m.start()) if name in _BOUNDABLE else None
    if bound and start is not None:
        span = (bound.start(), m.end())
        kw = bound["kw"]
        if kw == "avant":
            start, end = None, start
        elif kw.startswith("jusqu"):
            start = None
        elif start < c.now:
            end = c.now
    return TimeMatch(start, end, span, invalid=bool(flag))


_QUICK = re.compile(
    r"hier|aujourd|today|yesterday|matin|midi|soir|nuit|semaine|mois|annee|\ban\b|week|dernier|derniere|depuis|"
    r"jour|heure|minute|periode|debut|commencement|origine|toujours|historique|temps|dates|duree|piste|"
    r"apres|avant|jusqu|entre|recem|recent|dernierement|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|"
    + "|".join(m for m in MONTHS if len(m) >= 4)
)
