"""French formatting shared by every answer writer: numbers, dates, periods, lists, elision, units.

Numbers use a narrow no-break space as thousands separator and a decimal comma ("1 234,5"); dates
and hours are said in local time (settings.tz). Nothing here knows about plans or queries.
"""

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from config import settings
from time_parser import fold

NNBSP = "\u202f"  # narrow no-break space: thousands, and before "%"
MINUS = "\u2212"

MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
WEEKDAY_NAMES = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


# ---------------------------------------------------------------------------- numbers


def fmt_int(value: Any) -> str:
    """'1 234' (narrow no-break space), '12,50' for a non-integral float; anything else as str()."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".replace(",", NNBSP).replace(".", ",")
    return f"{int(value):,}".replace(",", NNBSP)


def fmt_decimal(value: float, digits: int = 1) -> str:
    """'12,5', '1 234,0': a fixed number of decimals, decimal comma."""
    return f"{value:,.{digits}f}".replace(",", NNBSP).replace(".", ",")


def percent(value: float, digits: int = 1) -> str:
    """'12,5 %' (narrow no-break space before the sign)."""
    return f"{fmt_decimal(value, digits)}{NNBSP}%"


def signed_percent(value: float, digits: int = 1) -> str:
    """'+25,0 %', '−20,0 %' (a true minus sign), '0,0 %'."""
    text = percent(abs(value), digits)
    if round(value, digits) == 0:
        return text
    return ("+" if value > 0 else MINUS) + text


def plural(n: Any, one: str, many: str) -> str:
    """'1 connexion', '39 connexions', '0 connexion' (French: 0 and 1 take the singular)."""
    return f"{fmt_int(n)} {one if isinstance(n, int | float) and abs(n) < 2 else many}"


def count_noun(n: Any, one: str, many: str | None = None, *, feminine: bool = False) -> str:
    """'aucune connexion', '1 connexion', '39 connexions'; `many` defaults to `one` + 's'."""
    if n == 0:
        return ("aucune " if feminine else "aucun ") + one
    return plural(n, one, many if many is not None else one + "s")


def duration(seconds: Any) -> str:
    """Seconds in words: '42 s', '5 min 03 s', '1 h 05 min', '2 j 3 h', "moins d'une seconde"."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return str(seconds)
    if 0 < seconds < 1:
        return "moins d'une seconde"
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} j {hours} h" if hours else f"{days} j"
    if hours:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{secs} s"


def ora(code: Any) -> str:
    """Oracle's error name for a return code: 942 → 'ORA-00942'."""
    return (
        f"ORA-{code:05d}" if isinstance(code, int) and not isinstance(code, bool) and code > 0 else str(code)
    )


# ---------------------------------------------------------------------------- words


def join_words(values: Iterable[Any], word: str = "ou") -> str:
    """'A', 'A ou B', 'A, B ou C' ('et', 'ni'... as `word`); '' for no value."""
    items = [str(v) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def cap(text: str) -> str:
    """The first letter in upper case (after any opening quote or bracket)."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
        if ch.isdigit():
            return text
    return text


def starts_with_vowel(word: str) -> bool:
    """Whether `word` takes an elided article: vowels, and a mute h in a lower-case word ('heure').

    Names in capitals ('HR_APP') are read letter by letter and keep 'de': 'de HR_APP'.
    """
    first = fold(word.lstrip('«" (')[:1])
    if not first:
        return False
    if first in "aeiouy":
        return True
    return first == "h" and word[:1].islower()


def de(text: str) -> str:
    """'de SCOTT', "d'ADM_MOREAU", 'du schéma X' (de + le), 'des machines' (de + les), "de l'objet"."""
    if text.startswith("le "):
        return "du " + text[3:]
    if text.startswith("les "):
        return "des " + text[4:]
    return ("d'" if starts_with_vowel(text) else "de ") + text


def article(noun: str, *, feminine: bool = False, many: bool = False) -> str:
    """'le schéma', 'la machine', "l'utilisateur", 'les machines'."""
    if many:
        return "les " + noun
    if starts_with_vowel(noun):
        return "l'" + noun
    return ("la " if feminine else "le ") + noun


def quoted(values: Iterable[Any], word: str = "et") -> str:
    """'« a » et « b »'."""
    return join_words((f"« {v} »" for v in values), word)


def weekday_name(iso_day: Any) -> str:
    """ISO weekday 1-7 (Monday-Sunday) → 'lundi'...'dimanche'; anything else as str()."""
    if isinstance(iso_day, int) and not isinstance(iso_day, bool) and 1 <= iso_day <= 7:
        return WEEKDAY_NAMES[iso_day - 1]
    return str(iso_day)


# ---------------------------------------------------------------------------- dates and hours


def local(value: datetime) -> datetime:
    return value.astimezone(settings.tz) if value.tzinfo else value.replace(tzinfo=settings.tz)


def as_datetime(value: Any) -> datetime | None:
    """A timestamp cell (datetime or ISO string) as a datetime; None for anything else."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def fmt_dt(value: datetime) -> str:
    """'26/11/2026 18:05' in local time."""
    return local(value).strftime("%d/%m/%Y %H:%M")


def fmt_day(value: datetime) -> str:
    """'26/11/2026' in local time."""
    return local(value).strftime("%d/%m/%Y")


def fmt_clock(value: datetime) -> str:
    """'18:05' in local time."""
    return local(value).strftime("%H:%M")


def is_midnight(value: datetime) -> bool:
    return local(value).timetz().replace(tzinfo=None) == dt_time()


def at_time(value: datetime) -> str:
    """'le 26/11/2026 à 18:05' in local time."""
    return f"le {fmt_day(value)} à {fmt_clock(value)}"


def hour_text(hour: int) -> str:
    """'06:00', '24:00'."""
    return f"{hour:02d}:00"


def hours_window(start: int, end: int) -> str:
    """Local hours [start, end), possibly across midnight: 'entre 20:00 et 06:00'."""
    return f"entre {hour_text(start)} et {hour_text(end)}"


def month_name(year: int, month: int) -> str:
    """'novembre 2026'."""
    return f"{MONTHS[month - 1]} {year}"


def span_text(start: datetime | None, end: datetime | None) -> str:
    """The absolute window in short French: 'vendredi 20/11/2026', 'du 16 au 22/11/2026', 'novembre 2026'."""
    if start and end:
        s, e = local(start), local(end)
        if is_midnight(s) and is_midnight(e):
            last = e - timedelta(days=1)
            if last.date() == s.date():
                return f"{WEEKDAY_NAMES[s.weekday()]} {fmt_day(s)}"
            if s.day == 1 and e.day == 1 and (e.year * 12 + e.month) - (s.year * 12 + s.month) == 1:
                return f"{MONTHS[s.month - 1]} {s.year}"
            if s.month == 1 and s.day == 1 and e.month == 1 and e.day == 1 and e.year == s.year + 1:
                return f"année {s.year}"
            if (s.year, s.month) == (last.year, last.month):
                return f"du {s.day:02d} au {fmt_day(last)}"
            if s.year == last.year:
                return f"du {s.strftime('%d/%m')} au {fmt_day(last)}"
            return f"du {fmt_day(s)} au {fmt_day(last)}"
        if s.date() == e.date() or (is_midnight(e) and (e - timedelta(days=1)).date() == s.date()):
            until = "minuit" if is_midnight(e) else fmt_clock(e)
            return f"le {fmt_day(s)} de {fmt_clock(s)} à {until}"
        return f"du {fmt_dt(s)} au {fmt_dt(e)}"
    if start:
        return f"depuis le {fmt_day(start) if is_midnight(start) else fmt_dt(start)}"
    if end:
        return f"avant le {fmt_day(end) if is_midnight(end) else fmt_dt(end)}"
    return ""


def span_phrase(start: datetime | None, end: datetime | None) -> str:
    """span_text as it follows a noun: 'le jeudi 20/11/2026', 'en novembre 2026', 'du 16 au 22/11/2026'."""
    text = span_text(start, end)
    if not text or text.startswith(("du ", "le ", "depuis ", "avant ")):
        return text
    if text.startswith("année "):
        return "en " + text.removeprefix("année ")
    if text.split(" ")[0] in WEEKDAY_NAMES:
        return "le " + text
    return "en " + text


def span_short(start: datetime | None, end: datetime | None, *, year: bool | None = None) -> str:
    """The window in brackets' words: '26/11', '23/11–29/11', '26/11 18:00–24:00', 'depuis le 23/11'.

    Whole days show the days (the last one included); other windows the hours, '24:00' for midnight.
    The year is shown when `year` is True, or (None) when the window is not within the current year.
    """
    bounds = [local(b) for b in (start, end) if b is not None]
    if not bounds:
        return ""
    if year is None:
        this_year = datetime.now(settings.tz).year
        year = any(b.year != this_year for b in bounds)
    pattern = "%d/%m/%Y" if year else "%d/%m"

    def d(value: datetime | date) -> str:
        return value.strftime(pattern)

    def dt(value: datetime) -> str:
        return d(value) if is_midnight(value) else f"{d(value)} {fmt_clock(value)}"

    if start and end:
        s, e = local(start), local(end)
        if is_midnight(s) and is_midnight(e):
            last = (e - timedelta(days=1)).date()
            return d(s) if last <= s.date() else f"{d(s)}–{d(last)}"
        if s.date() == e.date():
            return f"{d(s)} {fmt_clock(s)}–{fmt_clock(e)}"
        if is_midnight(e) and (e - timedelta(days=1)).date() == s.date():
            return f"{d(s)} {fmt_clock(s)}–24:00"
        return f"{d(s)} {fmt_clock(s)}–{d(e)} {fmt_clock(e)}"
    if start:
        return f"depuis le {dt(local(start))}"
    return f"avant le {dt(local(end))}" if end else ""
