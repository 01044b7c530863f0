# ruff: noqa: E501 (rule tables and regular expressions read better unwrapped)
"""Reading a French question into a query plan, word by word, or saying what was not understood.

`read(question, gaz, now=..., tz=..., previous=None) -> Reading`. Every rule that applies marks the
words it used; the words left must all be fillers (understand_lexicon.FILLERS), otherwise the reading
is `not_understood` and names them. A plan is returned only when the whole question was read.
Values named in the question are linked to the values stored in the trail (the gazetteer); a value
named after its column word ("le schéma XYZ") but absent from the trail stays a filter and is
reported in `absent`, so the answer is 0 and says so. Topics an audit trail does not record
(CPU, sizes, backups...) are `out_of_scope`.
"""

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dt_time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz, process, utils

import sql_question
import understand_lexicon as lx
from nlp_lexicon import Gazetteer
from plan import INT_FIELDS, TIME_BUCKETS, Filters, Having, Period, Plan, Sequence
from time_parser import MONTHS, NUMBERS, WEEKDAYS, fold
from understand_rules import (
    ACTION_NOUN_FIELDS,
    BOUNDARY,
    BUCKET_RX,
    EARLY_FILLERS,
    KIND_OF_CATEGORY,
    LIST_GAP,
    NUMBER,
    OUT_RX,
    PREAMBLE,
    SAME_FIELDS,
    SHARE_PIVOT,
    SHARE_PIVOT_VERB,
    SHARE_WHOLE,
    Item,
    R,
    Text,
    number_of,
    read_account_classes,
    read_auth,
    read_categories,
    read_compound_values,
    read_fields,
    read_hours,
    read_literals,
    read_outcome,
    read_periods,
    read_postfix_exclusions,
    read_shape_words,
    read_sql_words,
    read_threshold,
    read_values,
)

Kind = Literal["plan", "not_understood", "out_of_scope", "help", "small_talk"]


@dataclass
class Reading:
    kind: Kind
    plan: Plan | None = None  # the whole reading; for not_understood, the partial one (never answered)
    unknown: list[str] = field(default_factory=list)  # words not understood, as typed
    absent: dict[str, list[Any]] = field(default_factory=dict)  # field -> named values absent from the trail
    closest: dict[str, list[Any]] = field(default_factory=dict)  # field -> existing values close to them
    notes: list[str] = field(default_factory=list)  # interpretations said out loud
    topic: str | None = None  # out_of_scope: what the question is about
    follow_up: bool = False


# --------------------------------------------------------------------------- assembling the plan


def _negated(t: Text, item: Item) -> bool:
    """An exclusion word before the item, with nothing but values, categories and fillers between."""
    named = sorted((i for i in t.items if i.kind in ("value", "category")), key=lambda i: i.start)
    for ex in t.of("EXCLUDE_WORDS"):
        if ex.end > item.start:
            continue
        # the list right after the word: "sauf SYS et SYSTEM", not "hors SELECT de BI_REPORT"
        after = [i for i in named if ex.end <= i.start <= item.start]
        if any(_verb_after_list(t, a, b) for a, b in itertools.pairwise(after)):
            continue  # "d'autre que HR_APP lit HR.SALARIES": the list ends at the verb
        head = after[0].start if after else item.start  # "pas des serveurs (a, b, c)": up to the list
        gap = re.sub(r"\b(?:ceux|celles|ce) (?:qui|dont) \S+", " ", t.low[ex.end : head])
        if BOUNDARY.search(gap) or len(gap) > 60:
            continue
        linked = all(LIST_GAP.fullmatch(t.low[a.end : b.start]) for a, b in itertools.pairwise(after))
        if linked:
            return True
    return item.negated


_OF_GAP = re.compile(r"\s*(?:de|du|des|d')\s*(?:l'|la |le |les )?\s*")


def _joint_exclusion(t: Text) -> str | None:
    """An excluded value "of" a value of another field ("sauf les SELECT de SCOTT"): the words, if so."""
    named = sorted((i for i in t.items if i.kind in ("value", "category")), key=lambda i: i.start)
    for ex in t.of("EXCLUDE_WORDS"):
        after = [i for i in named if i.start >= ex.end]
        for a, b in itertools.pairwise(after[:4]):
            if a.start == b.start or not _OF_GAP.fullmatch(t.low[a.end : b.start]):
                continue
            if _field_of(a) != _field_of(b) and _negated(t, a):
                return t.raw[a.start : b.end]
    return None


def _field_of(item: Item) -> str:
    """The column a named item filters: its own for a value, the action for a category."""
    return item.value[0] if item.kind == "value" else "action_name"


def _verb_after_list(t: Text, before: Item, other: Item) -> bool:
    """An action said as a verb right after a value ("HR_APP lit ...", nothing between): the
    exclusion's list ended before it. "sauf SCOTT et les suppressions" goes on."""
    raw = t.raw[other.start : other.end]
    if raw != raw.lower() or before.kind != "value" or t.low[before.end : other.start].strip():
        return False
    return other.kind == "category" or _field_of(other) == "action_name" != _field_of(before)


_SQL_WORD = re.compile(
    r"(?:insert|update|delete|drop|truncate|create|alter|grant|revoke|select|merge|rename)s?(?: \w+)?"
)
_GIVE = re.compile(r"\b(?:accord|attribu|donn|octroy|fil|grant)\w*")
# Who receives a right, as opposed to who grants it.
_GRANTEE = re.compile(
    r"\b(?:recu|recus|recue|recues|obtenu|obtenus|recoit|recoivent|beneficiaire|"
    r"(?:accorde|attribue|donne|octroye|file)e?s? (?:a|au|aux)\b)"
)


# Words that point back at the previous answer: "elles venaient d'où ?", "qui a fait ces DELETE ?".
_ANAPHORA = re.compile(
    r"\bmeme periode\b|^\s*(?:et\s+|mais\s+)?(?:elles|ils)\b|\b(?:celles|ceux)-(?:ci|la)\b|\b(?:parmi|d'entre) (?:eux|elles)\b|"
    r"\bces\b(?!\s+(?:\d+|deux|trois|quatre|cinq|six|sept|huit|dix|quinze|trente)?\s*"
    r"(?:derni\w*|jours?|heures?|semaines?|mois|minutes?|nuits?|soirs?|matins?|week-ends?)\b)"
)


def anaphora(t: Text) -> str | None:
    m = _ANAPHORA.search(t.low)
    return t.raw[m.start() : m.end()].strip() if m else None


# How a question that continues the previous one begins: "et pour SCOTT ?", "sans les SELECT".
_CONTINUES = re.compile(
    r"\s*(?:et|mais|ou|plutot|seulement|uniquement|juste|maintenant|aussi|pareil|idem|meme chose|meme question|par|"
    r"pour chaque|sans|sauf|hors|a part|excepte|en excluant|en dehors|dont)\b"
    r"|\s*(?:detaill|ventil|decompos|eclat)\w*(?:[- ](?:le|la|les|moi|nous|ca))?\s+(?:par|pour chaque)\b"
)
_BREAKDOWN = re.compile(r"\s*(?:par|pour chaque)\b")  # "par utilisateur" is also a question of its own
# Words of a question that stands on its own ("sans les SELECT, combien d'actions hier ?").
_ASKS = re.compile(r"\b(?:qui|quel\w*|quand|quoi|comment|combien|liste\w*|montre\w*|affiche\w*|donne\w*)\b")


def _bare(t: Text) -> bool:
    """ "qui ?", "combien ?", "quand ?": a question word alone, about nothing named."""
    return len(re.findall(r"\w+", t.low)) <= 2 and not (t.of("value") or t.of("category") or t.of("period"))


def elliptic(t: Text) -> bool:
    """A question that only continues a previous one: "et pour SCOTT ?", "sauf SYS", "qui ?"."""
    if _BREAKDOWN.match(t.low):
        return False
    if _bare(t):
        return True
    return bool(_CONTINUES.match(t.low)) and not _ASKS.search(t.low) and not t.of("COUNT_WORDS")


def _is_follow_up(t: Text, previous: Plan | None) -> bool:
    if previous is None:
        return False
    if anaphora(t) or _CONTINUES.match(t.low) or _bare(t):
        return True
    if re.search(
        r"\b(?:les|l'|en|leur) ?(?:a|ont|avait|avaient|as|fait|font)\b|\b(?:ceux|celles)-(?:ci|la)\b", t.low
    ):
        return True  # "qui les a effectuées ?": about what was just answered
    if re.match(r"\W*(?:depuis|avec|sur|dans|via|pour|chez|de|par) (?:quel(?:le)?s?|qui|quoi)\b", t.low):
        return len(t.low.split()) <= 5  # "depuis quels programmes ?", "avec quel compte OS ?"
    grouping = [m.end() for m in re.finditer(r"\b(?:par|pour chaque)\s+(?:les? |la |l')?", t.low)]
    heads = [i for i in t.of("field") + t.of("bucket") if i.start not in grouping]  # "..., par utilisateur"
    heads += t.of("category") + t.of("COUNT_WORDS")
    return not heads and len(t.low.split()) <= 6


def ranked_any(t: Text) -> bool:
    return bool(t.of("RANK_MOST") or t.of("RANK_LEAST") or t.of("threshold"))


def _leftover(t: Text) -> list[str]:
    for m in R["FILLER_PHRASES"].finditer(t.low):
        if t.free(m.start(), m.end()):
            t.take(m.start(), m.end())
    text = t.visible()
    unknown = []
    for m in lx.TOKEN.finditer(text):
        word = m.group(0).strip("'-.")
        parts = [p for p in re.split(r"[-']", word) if p]
        if all(p in lx.FILLERS or len(p) == 1 or R["EVENT_NOUNS"].fullmatch(p) for p in parts):
            continue
        unknown.append(t.raw[m.start() : m.end()])
    return unknown


def _closest(gaz: Gazetteer, fld: str, value: Any) -> list[Any]:
    choices = [str(v) for v in gaz.values.get(fld, [])]
    if not choices:
        return []
    found = process.extract(
        str(value), choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=3, score_cutoff=60
    )
    return [c for c, _, _ in found]


def _vocabulary() -> tuple[str, ...]:
    """Every word the rules know, for the spelling pass, sorted: equal scores then pick the same word
    in every process (a set's order changes with the hash seed)."""
    words: set[str] = set(lx.FILLERS) | set(MONTHS) | set(WEEKDAYS) | set(NUMBERS)
    sources = [p for p, _ in lx.FIELD_WORDS + lx.BUCKET_WORDS + lx.OUT_OF_SCOPE]
    sources += [p for p, *_ in lx.CATEGORY_WORDS] + [str(getattr(lx, n)) for n in dir(lx) if n.isupper()]
    for source in sources:
        words.update(re.findall(r"[a-z]{4,}", source))
    words.update(_TIME_WORDS)
    return tuple(sorted(words))


_TIME_WORDS = ("semaine", "semaines", "mois", "hier", "aujourd'hui", "dernier", "derniere", "derniers", "dernieres",
               "precedent", "precedents", "precedente", "matin", "soir", "nuit", "heure", "heures", "minute",
               "minutes", "jour", "jours", "annee", "week-end")  # fmt: skip
_VOCAB: tuple[str, ...] | None = None
# Words whose meaning a one-letter change would turn around: never "corrected".
_NEVER_SPELLED = frozenset(
    ("personne", "aucun", "aucune", "chaque", "moyen", "moyenne", "moyennes", "meme", "pas", "plus", "moins", "rien",
     "jamais", "autre", "autres", "sans", "hors", "sauf", "seul", "seule", "tous", "toutes", "tout")
)  # fmt: skip
_WORD = re.compile(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'-]*")


def _spell(question: str, unknown: list[str], gaz: Gazetteer) -> tuple[str, list[str]]:
    """The question with its unknown words read as the abbreviations or the words the rules know."""
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = _vocabulary()
    vocab = _VOCAB
    out, notes, last = [], [], 0
    for m in _WORD.finditer(question):
        typed = m.group(0)
        word = fold(typed).strip("'-")
        if typed not in unknown or gaz.lookup(word) or word in _NEVER_SPELLED:
            continue
        elided = re.match(r"(?:d|l|qu|s)'(?=\w{4})", word)  # "d'ereurs": the word after the apostrophe
        if elided:
            m_start = m.start() + elided.end()
            word, typed = word[elided.end() :], typed[elided.end() :]
        else:
            m_start = m.start()
        fixed = lx.ABBREVIATIONS.get(word)
        lower = typed.lower() == typed or (
            not question[: m.start()].strip() and typed[1:].lower() == typed[1:]
        )
        if fixed is None and len(word) >= 4 and lower:  # not names: "Excel", "SCOTTY"
            cutoff = 88 if len(word) == 4 else 80
            # a typo seldom changes the first letter: "provoqué" is a word of its own, not "revoqué"
            found = process.extract(word, vocab, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5)
            fixed = next((f[0] for f in found if f[0][0] == word[0]), None)
        if fixed and fixed != word:
            out.append(question[last:m_start] + fixed)
            last = m.end()
            notes.append(f"« {typed} » lu comme « {fixed} »")
    out.append(question[last:])
    return "".join(out), notes


def read(
    question: str,
    gaz: Gazetteer,
    *,
    now: datetime,
    tz: ZoneInfo,
    previous: Plan | None = None,
) -> Reading:
    """The plan of `question`, or why there is none."""
    if sql_question.looks_like_sql(question):  # "select count(*) from unified_audit_trail where ..."
        plan, absent, part = sql_question.read(question, gaz, now=now, tz=tz)
        if plan is None:
            why = "cette partie de la requête SQL ne se traduit pas en question sur la piste d'audit"
            return Reading("not_understood", unknown=[part or question], notes=[why])
        closest = {f: _closest(gaz, f, vals[0]) for f, vals in absent.items() if f not in INT_FIELDS}
        return Reading(
            "plan", plan=plan, absent=absent, closest=closest, notes=["requête SQL lue telle quelle"]
        )
    reading = _read(question, gaz, now=now, tz=tz, previous=previous)
    if reading.kind != "not_understood" or not reading.unknown:
        return reading
    fixed, spelled = _spell(question, reading.unknown, gaz)
    if not spelled:
        return reading
    again = _read(fixed, gaz, now=now, tz=tz, previous=previous)
    if again.kind != "plan":
        return reading  # the user's own words are reported, not the corrected ones
    again.notes = [*spelled, *again.notes]
    return again


def _read(question: str, gaz: Gazetteer, *, now: datetime, tz: ZoneInfo, previous: Plan | None) -> Reading:
    t = Text(question)
    if not t.low.strip(" ?!."):
        return Reading("not_understood")
    if R["SMALL_TALK"].search(t.low):
        return Reading("small_talk")
    if R["HELP"].search(t.low):
        return Reading("help")
    if R["COMMANDS"].search(t.low):
        return Reading("out_of_scope", topic="une action sur la base (je lis seulement la piste d'audit)")
    for rx, topic in OUT_RX:
        if rx.search(t.low):
            return Reading("out_of_scope", topic=topic)

    for m in PREAMBLE.finditer(t.low):  # "dans le cadre de la revue des accès, ...": why, not what
        t.take(m.start(), m.end())
        if who := re.match(r"\s*qui\b", t.low[m.end() :]):  # "le RSSI demande qui a ...": who, per account
            t.add((m.end() + who.end() - 3, m.end() + who.end()), "field", "dbusername")
    for m in t.matches(R["ANOMALY_WORDS"]):
        t.add(m, "ANOMALY")
    t.now, t.tz = now, tz
    continues = _CONTINUES.match(t.low) or re.match(r"\W*(?:compare|par rapport|versus|vs)\b", t.low)
    if (
        previous is not None
        and previous.period
        and previous.period.start
        and previous.period.end
        and continues
    ):
        for m in t.matches(_BEFORE_PREVIOUS):  # "et la semaine d'avant ?": before the previous period
            t.add(m, "period_shift", (m["unit"] or "jour", t.raw[m.start() : m.end()]))
    if previous is not None and continues:  # "par table maintenant", "et la semaine dernière alors ?"
        for m in re.finditer(r"\b(?:maintenant|alors|du coup|cette fois)(?=\W*$)", t.low):
            t.take(m.start(), m.end())
    for m in EARLY_FILLERS.finditer(t.low):  # before "que des" reads as "only", "commence par" as a grouping
        t.take(m.start(), m.end())
    if not re.search(r"\bjamais\b", t.low):  # ("comptes jamais déconnectés": never, per account)
        for m in t.matches(R["SESSION_OPEN"]):  # before "sans LOGOFF" reads as an exclusion of LOGOFF events
            t.add(m, "SESSION_OPEN")
    read_sql_words(t)
    read_literals(t, gaz)
    read_compound_values(t, gaz)
    read_hours(t)
    read_periods(t, now, tz)
    read_account_classes(t, gaz)
    read_auth(t)
    read_categories(t, gaz)
    read_outcome(t)
    read_threshold(t)
    read_shape_words(t)
    read_fields(t)
    prefer: tuple[str, ...] = ()
    if previous is not None and elliptic(t):  # "sans SYS" after a breakdown by schema: those schemas
        named, grouped = tuple(previous.filters.include), tuple(previous.group_by)
        excluding = re.match(r"\W*(?:sans|sauf|hors|a part|excepte|en excluant)\b", t.low)
        prefer = (*grouped, *named) if excluding else (*named, *grouped)
    read_values(t, gaz, prefer)
    read_postfix_exclusions(t)
    return _assemble(t, gaz, previous)


def _assemble(t: Text, gaz: Gazetteer, previous: Plan | None) -> Reading:
    notes: list[str] = []
    absent: dict[str, list[Any]] = {}
    include: dict[str, list[Any]] = {}
    exclude: dict[str, list[Any]] = {}
    categories: list[str] = []
    exclude_categories: list[str] = []
    action_items: list[tuple[Item, tuple[str, ...], tuple[str, ...]]] = []
    failed: bool | None = None
    follow_up = _is_follow_up(t, previous)
    pointer = anaphora(t)
    if pointer and previous is None:  # "elles venaient d'où ?" with nothing before: about what?
        return _not_understood(t, [pointer], None, notes, "à quoi renvoie ce mot, sans question précédente ?")
    if previous is None and elliptic(t):  # "et pour SCOTT ?" first: the question it continues is missing
        why = "elle semble prolonger une question précédente, mais il n'y en a pas"
        return _not_understood(t, [t.raw.strip()], None, notes, why)

    for item in t.of("category"):
        cats, acts, note = item.value
        action_items.append((item, cats, acts))
        if note:
            notes.append(note)
    for item in t.of("failed"):
        failed = item.value
    notes += [i.value for i in t.of("class_note")]
    ora_codes = [i for i in t.of("value") if i.value[2]]
    if ora_codes and failed is None:
        failed = True

    # share: the part is what is named right after the share word (or "failed" when it is asked)
    # share: "la part des X [de Y] qui/dans/vient... Z": X, Y the whole, Z the part; "Z, quelle part des X":
    # Z the part; with nothing else, X is the part of every event; "taux d'échec des connexions": failed
    share_items: list[Item] = []
    failed_whole = False
    cut = len(t.low)
    share = t.of("SHARE_WORDS")
    if share:
        at = share[0].start
        named = sorted(
            (
                i
                for i in t.of("category") + t.of("value") + t.of("hours") + t.of("off_hours")
                if not _negated(t, i)
            ),
            key=lambda i: i.start,
        )

        def whole_end(at: int) -> int:  # up to a comma or a verb ("de l'activité d'X a lieu entre 2h et 3h")
            verb = SHARE_PIVOT_VERB.search(t.low, at)
            return min((t.low.find(",", at) + 1 or len(t.low) + 1) - 1, verb.start() if verb else len(t.low))

        whole = [(m.start(), whole_end(m.end())) for m in SHARE_WHOLE.finditer(t.low)]
        in_whole = [i for i in named if any(a <= i.start < b for a, b in whole)]
        # a verb ("sont", "vient de") separates the whole from the part better than a preposition
        # ("des opérations passées par JDBC sont des INSERT"): the last verb, else the first pivot
        verbs = [m for m in SHARE_PIVOT_VERB.finditer(t.low, share[0].end) if t.free(m.start(), m.end())]
        pivot = verbs[-1] if verbs else SHARE_PIVOT.search(t.low, share[0].end)
        cut = pivot.start() if pivot else len(t.low)
        failed_whole = any(
            R["FAILED_WORDS"].search(t.low[a:b]) for a, b in whole
        )  # "% d'ORA-00942 parmi les erreurs": the errors are the whole
        # "taux d'échec des connexions pour HR_APP": failures within all the rest, unless a part is named
        # after a pivot ("pourcentage des erreurs qui correspond à ORA-00942")
        rate = t.low[share[0].start : share[0].end].startswith(
            ("taux", "ratio")
        )  # "taux d'erreur des X sur Y"
        failed_part = any(0 <= f.start - share[0].end <= 6 for f in t.of("failed")) and (
            rate or not any(i.start >= cut and i not in in_whole for i in named)
        )
        if failed_part:
            share_items = []
        elif in_whole or failed_whole:  # "parmi les modifications, ...", "dans l'ensemble des lectures"
            share_items = [i for i in named if i not in in_whole]
        else:
            share_items = [i for i in named if i.start < at or i.end > cut]
        after = [i for i in named if at < i.start and i.end <= cut]
        if not share_items and not (failed is not None and (after or t.of("category"))) and after:
            share_items = after[:1]
    share_cats: list[str] = []
    share_include: dict[str, list[Any]] = {}
    share_failed = share and failed is not None and not share_items and not (share and failed_whole)
    if share and any(_negated(t, i) and i.start >= cut for i in t.of("value") + t.of("category")):
        # "quelle part des SELECT ne passe pas par SQL Developer": a part defined by what it is not
        return _not_understood(t, ["pas"], None, notes, why="une part définie par une exclusion")

    if joint := _joint_exclusion(t):
        # "hors SELECT de BI_REPORT": leave out BI_REPORT's SELECTs only, which one filter cannot say
        return _not_understood(
            t,
            [joint],
            None,
            notes,
            why="exclure seulement cette combinaison, en gardant le reste de chacune, ne se calcule pas",
        )

    sel_actions: list[str] = []
    # "opérations destructrices (suppressions, purges, drops)": the list shows the class, it narrows nothing
    # ("(insert/update/delete)" after "modifiés" is a list of SQL words: it says which, and narrows)
    examples: list[tuple[int, int]] = []
    for item, cats, _ in action_items:
        m = re.match(r"\s{0,2}\(([^)]*)\)", t.low[item.end :]) if cats else None
        if m:
            lo, hi = item.end + m.start(1), item.end + m.end(1)
            inner = [i for i in t.items if lo <= i.start < hi and i.kind in ("category", "value")]
            if any(not _SQL_WORD.fullmatch(t.low[i.start : i.end]) for i in inner):
                examples.append((lo, hi))
    action_items = [a for a in action_items if not any(lo <= a[0].start < hi for lo, hi in examples)]
    for v in t.of("value"):
        if v.value[0] == "action_name" and any(lo <= v.start < hi for lo, hi in examples):
            t.items.remove(v)
    for item, cats, acts in action_items:
        neg = _negated(t, item)
        target_cats = exclude_categories if neg else categories
        if item in share_items:
            share_cats += list(cats)
            if acts:
                share_include.setdefault("action_name", []).extend(acts)
            continue
        target_cats += [c for c in cats if c not in target_cats]
        if acts:
            if neg:
                exclude.setdefault("action_name", []).extend(acts)
            else:
                sel_actions += [a for a in acts if a not in sel_actions]
    kinds = [c for c in ("dml", "ddl") if c in categories]
    if "change" in categories and len(kinds) == 1:  # "modifiés par du DML": the named kind of change
        categories.remove("change")
        notes[:] = [n for n in notes if "lu comme DML et DDL" not in n]
    elif len(kinds) == 2 or "change" in categories:  # "DML et DDL": every change
        categories = [c for c in categories if c not in ("dml", "ddl", "change")] + ["change"]
    for cat, kind in KIND_OF_CATEGORY.items():
        narrowed = [a for a in sel_actions if a.endswith(" " + kind)]
        if cat in categories and narrowed and len(narrowed) < len(sel_actions):
            sel_actions = narrowed
            if cat != "temporary":
                categories.remove(cat)
    if sel_actions:
        include["action_name"] = sel_actions
        present = {str(a) for a in gaz.values.get("action_name", [])}
        missing = [a for a in sel_actions if a not in present]
        if missing and len(missing) == len(sel_actions):
            absent["action_name"] = missing
    # "connexions" with an explicit LOGON action, or a category that the actions already say
    if "logon" in categories and include.get("action_name") == ["LOGON"]:
        include.pop("action_name")

    for item in t.of("value"):
        fld, value, _ = item.value
        if item in share_items:
            share_include.setdefault(fld, []).append(value)
            continue
        negated = _negated(t, item)
        table = next(
            (o for o in t.of("value") if o.value[0] == "object_name" and o.start == item.start), None
        )
        qualified = table is not None
        if negated and fld == "object_schema" and qualified:
            # "pas la table SALES.ORDERS": the table is left out (an exclusion per field would also
            # leave out every other table of SALES)
            name = table.value[1] if table is not None else value
            notes.append(f"les tables nommées {name} sont exclues, quel que soit leur schéma")
            continue
        target = exclude if negated else include
        if value not in target.setdefault(fld, []):
            target[fld].append(value)
        present_vals = {str(v).upper() for v in gaz.values.get(fld, [])} if fld not in INT_FIELDS else None
        if fld in INT_FIELDS:
            if fld == "return_code" and value not in gaz.values.get("return_code", [value]):
                absent.setdefault(fld, []).append(value)
        elif present_vals is not None and str(value).upper() not in present_vals:
            absent.setdefault(fld, []).append(value)

    contains = [i.value for i in t.of("contains")]
    granting = "role" in categories or "grant" in categories or "GRANT" in include.get("action_name", [])
    users = [v for v in t.of("value") if v.value[0] == "dbusername" and not v.negated]
    to_user = {v.value[1] for v in users if re.search(r"(?:^|\s)(?:a|au)\s*$", t.before(v.start, 4))}
    if (
        granting
        and include.get("dbusername")
        and (_GRANTEE.search(t.low) or (to_user and _GIVE.search(t.low)))
    ):
        # "PLEGRAND a-t-il reçu le rôle DBA ?", "qui a accordé DBA à PLEGRAND ?": the trail's user is who
        # grants; the grantee is only in the statement's text ("GRANT DBA TO PLEGRAND")
        by = {v.value[1] for v in users if re.search(r"\bpar\s*$", t.before(v.start, 6))}
        grantees = [
            u for u in include["dbusername"] if u not in by and (u in to_user or _GRANTEE.search(t.low))
        ]
        include["dbusername"] = [u for u in include["dbusername"] if u not in grantees]
        if not include["dbusername"]:
            del include["dbusername"]
        contains += [f"TO {u}" for u in grantees]
        notes.append(
            "le bénéficiaire d'un droit n'est que dans le texte SQL (« TO " + ", ".join(grantees) + " »)"
        )
    hours = next((i.value for i in t.of("hours") if i.value and i not in share_items), None)
    off = next((i.value for i in t.of("off_hours") if i not in share_items), None)
    share_filters = Filters(
        categories=share_cats, include=share_include,
        hours=next((i.value for i in t.of("hours") if i.value and i in share_items), None),
        off_hours=next((i.value for i in t.of("off_hours") if i in share_items), None),
    )  # fmt: skip
    if share_failed:
        share_filters = Filters(failed=failed)
        failed = None
    filters = Filters(
        include=include, exclude=exclude, categories=categories, exclude_categories=exclude_categories,
        failed=failed, sql_contains=contains, hours=hours, off_hours=off,
    )  # fmt: skip

    period_items = sorted(t.of("period"), key=lambda i: i.start)
    vague = [i for i in period_items if i.value and re.fullmatch(_VAGUE_PERIOD, fold(i.value.label))]
    if vague and len(period_items) > len(vague):  # "récemment ? disons les 7 derniers jours": the one said
        period_items = [i for i in period_items if i not in vague]
    periods = [i.value for i in period_items]
    if len(period_items) == 2 and not t.of("COMPARE_WORDS"):
        a, b = period_items
        joined = re.fullmatch(r"\s*(?:et|,)\s*", t.low[a.end : b.start])
        if joined and a.value.end == b.value.start:  # "samedi et dimanche derniers": one span
            label = f"{a.value.label} et {b.value.label}"
            periods = [Period(start=a.value.start, end=b.value.end, label=label)]
            tail = re.match(r"\s*derni\w*", t.low[b.end :])
            if tail:  # "derniers" says which days, not "the last event"
                t.items = [i for i in t.items if not (i.kind == "LAST_WORDS" and i.start >= b.end)]
                t.take(b.end, b.end + tail.end())
    if (
        hours
        and len(periods) == 1
        and periods[0]
        and periods[0].start is not None
        and periods[0].end is not None
    ):
        # "entre minuit et 5h ce matin": the hours say which part of that day, not "ce matin" (6-12 h)
        p0 = periods[0]
        day = p0.start.astimezone(t.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        if p0.end - p0.start < timedelta(days=1) and p0.end <= day + timedelta(days=1):
            periods = [Period(start=day, end=day + timedelta(days=1), label=p0.label)]
    for item in period_items:  # "hors week-end": no filter leaves a period out; never the period itself
        if any(
            0 <= item.start - ex.end <= 8
            and re.fullmatch(r"\s*(?:le |la |les |du |des |de la |l')?\s*", t.low[ex.end : item.start])
            for ex in t.of("EXCLUDE_WORDS")
        ):
            said = t.raw[item.start : item.end].strip()
            return _not_understood(t, [said], None, notes, why="exclure une période ne se calcule pas")
    invalid = t.of("invalid_date")
    if invalid:  # "le 31 novembre", "lundi 22" (a Sunday): no figure for another period
        said = invalid[0].value.strip()
        return _not_understood(t, [said], None, notes, why=f"la date « {said} » n'existe pas")

    for item in t.of("NOT_NULL"):  # "SYSTEM_PRIVILEGE_USED n'est pas null": a privilege was used
        named = [f for f in t.of("field") if 0 <= item.start - f.end <= 25]
        if not named or named[-1].value != "system_privilege_used":
            return _not_understood(t, ["null"], None, notes)
        named[-1].kind = "introducer"
        filters = filters.model_copy(update={"categories": [*filters.categories, "system_privilege"]})
    # fields: grouping ("pour chaque X" first, then "par X"), distinct count, or the head of "quels X"
    each: list[str] = []
    per: list[str] = []
    heads: list[Item] = []
    distinct_field: str | None = None
    counting = bool(t.of("COUNT_WORDS"))
    typed_at: dict[str, int] = {}  # where each grouping was said: "par X et par Y" groups in that order
    for item in t.of("bucket"):
        per.append(item.value)
        typed_at.setdefault(item.value, item.start)
    values_at = [(v.start, v.value[0]) for v in t.of("value")]
    group_starts = [m.start() for m in re.finditer(r"\bpar\b|\bpour chaque\b|/", t.low)]
    for item in t.of("field"):
        fields = {item.value, "object_schema"} if item.value == "object_name" else {item.value}
        before = t.before(item.start, 24)
        listed = re.match(r"\s*\(", t.low[item.end :]) and re.search(r"\bpar\s*$", before)
        if not listed and any(
            0 <= pos - item.end <= 4 and fld in fields and "," not in t.low[item.end : pos]
            for pos, fld in values_at
        ):
            continue  # "la table SALES.ORDERS": the word introduces its value ("par compte (A, B)" groups)
        word = t.low[item.start : item.end]
        noun_only = item.value in ACTION_NOUN_FIELDS and re.fullmatch(ACTION_NOUN_FIELDS[item.value], word)
        grouped = re.search(r"(?:" + lx.GROUP_WORDS + r")\s*(?:les |la |le |l')?$", before) or (
            re.search(r"(?:\bet|,)\s*(?:par\s*)?(?:les |la |le |l')?$", before) and (each or per)
        )  # "par OS_USERNAME et DBUSERNAME"
        if grouped:
            target = (
                each
                if re.search(r"(?:chaque|chacun\w*)\s*(?:des |de )?(?:les |la |le |l')?$", before)
                else per
            )
            if item.value not in target:
                target.append(item.value)
                typed_at.setdefault(item.value, item.start)
            continue
        distinct_after = any(d.start >= item.end and d.start - item.end <= 3 for d in t.of("DISTINCT_WORDS"))
        rank_after = any(
            r.start >= item.end and r.start - item.end <= 3 for r in t.of("RANK_MOST") + t.of("RANK_LEAST")
        )
        group_after = any(0 <= g - item.end <= 2 for g in group_starts)
        asked = re.search(
            r"(?:quel(?:le)?s?|types? d'|quel(?:le)?s sont (?:les )?|ses |leurs |quoi comme |quel type d'|quels types d'|"
            r"(?:liste[rz]?|la liste|liste-moi|listez|repartition) (?:complete |exhaustive )?(?:des|de|d'))\s*$",
            before,
        ) or (  # "valeurs de TERMINAL": each value, unless counted ("combien de valeurs distinctes de X")
            not re.search(r"(?:combien|nombre|nbre|nb|total|count)\s+(?:de |d'|des )?valeurs", t.low)
            and re.search(
                r"valeurs (?:distinctes |differentes |prises )?(?:de |du |des |d')(?:la |le |l')?\s*$", before
            )
        )
        if noun_only and not (distinct_after or rank_after or asked or (group_after and not counting)):
            continue  # "combien d'actions": events
        if counting and re.search(
            r"(?:combien|nombre|nbre|nb|total|count)\s*(?:distinct\s*|de |d'|des )?(?:valeurs (?:distinctes |differentes )?(?:de |d'|des )?)?(?:les |la |le )?$",
            t.before(item.start, 40),
        ):
            distinct_field = item.value
            continue
        ranks = t.of("RANK_MOST") + t.of("RANK_LEAST")
        by_rank = any(0 <= item.start - i.end <= 1 for i in ranks) and re.search(r"(?:de |d')$", before)
        by_threshold = any(0 <= item.start - i.end <= 1 for i in t.of("threshold"))
        if (by_rank or by_threshold) and not noun_only:
            if by_threshold and distinct_field and distinct_field != item.value:
                per.append(
                    distinct_field
                )  # "combien d'utilisateurs ont plus de 10 sessions": users, by sessions
            distinct_field = item.value  # "le plus de sessions", "plus de 50 machines": what is counted
            continue
        if item.value == "sql_text" and t.of("contains") and not asked:
            continue  # "dans le texte SQL": where the words are looked for
        having_words = t.of("HAVING_BOTH") or t.of("HAVING_ONLY") or t.of("HAVING_NEVER")
        indefinite = (
            re.search(r"(?:^|\s)(?:des|d'|un|une|de)\s*$", before) and not ranked_any(t) and not having_words
        )
        if indefinite and not asked and not group_after and word != "qui" and not t.of("threshold"):
            continue  # "est-ce que des tables ont été supprimées": a condition, not a breakdown
        item.asked = bool(asked) or bool(
            re.search(r"(?:de |d')?quels?\s*$|(?:lequel|laquelle|lesquel(?:le)?s) des\s*$", before)
        )
        heads.append(item)
    for item in t.of("WHO_WHAT"):
        heads += [Item(item.start, item.end, "field", "dbusername", asked=True),
                  Item(item.start, item.end, "field", "action_name", asked=True)]  # fmt: skip
    asked_heads = [h for h in heads if h.asked]
    if asked_heads:
        heads = asked_heads
    elif counting and not ranked_any(t):
        first_count = min(i.start for i in t.of("COUNT_WORDS"))
        heads = [h for h in heads if h.start < first_count]  # "combien de X ... aux tables": a count
    heads = heads[:2]
    head = heads[0] if heads else None
    ranked = t.of("RANK_MOST") or t.of("RANK_LEAST")
    order = "asc" if t.of("RANK_LEAST") else ("desc" if ranked else None)
    limit = None
    per.sort(key=lambda g: typed_at.get(g, len(t.low)))
    group_by: list[str] = [*each, *(g for g in per if g not in each)]
    crossed = re.search(r"\w\s+x\s+\w", t.low)
    if crossed and heads:  # "user x machine": in the order typed
        order_of = {h.value: h.start for h in heads}
        group_by = sorted({*group_by, *order_of}, key=lambda g: order_of.get(g, crossed.end()))
        heads = []
    session_head = head is not None and head.value == "session_id"
    for h in heads:
        if h.value in group_by or (h.value == "session_id" and not ranked):
            continue
        group_by.append(h.value)
    if head is not None:
        word = t.low[head.start : head.end].split(" ")[0]
        plural = word.endswith(("s", "x")) or word == "gens"
        singular = re.search(
            r"(?:^|\W)(?:le|la|l'|quel|quelle|un|une|du|de la|seul|lequel des|laquelle des)\s*$"
            r"|(?:^|\W)(?:le|la|l')\s*(?:plus|moins)\s+\w+\s*$",  # "la plus longue session"
            t.before(head.start, 24),
        )
        typed = t.raw[head.start : head.end]
        at_start = not t.low[: head.start].strip(" ?!.,") and typed.lower() == typed
        # "ACTION_NAME le plus fréquent": a singular superlative (one the rules rank by) right after
        # the column word
        singular = singular or any(
            0 < r.start - head.end <= 2
            and re.match(r"(?:le|la)\s+(?:plus|moins)\s+(?!de\b)\w*[^sx\W]\b", t.low[r.start :])
            for r in ranked
        )
        plural_heads = any(re.match(r"\S+[sx]\b|gens", t.low[h.start : h.end]) for h in heads)
        if ranked and not plural_heads and (word == "qui" or ((singular or at_start) and not plural)):
            limit = 1
    if ranked and re.search(r"\b(?:lequel|laquelle)\b", t.low):
        limit = 1  # "lequel des comptes ... le moins"
    elif (
        ranked
        and group_by
        and group_by[0] in TIME_BUCKETS
        and re.search(r"\b(?:quel|quelle|le|la|l')\s+(?:jour|heure|semaine|mois)\b", t.low)
    ):
        limit = 1  # "quel jour ... le moins chargé"
    for m in NUMBER.finditer(t.visible()):
        n = number_of(m["n"])
        if n and (
            ranked
            or t.of("LAST_WORDS")
            or t.of("FIRST_WORDS")
            or t.of("DETAIL_WORDS")
            or re.search(r"top\s*$", t.before(m.start(), 5))
        ):
            limit = n
            t.take(m.start(), m.end())
            break

    measure = "events"
    detail = False
    session_state = None
    fld_for_distinct = None
    if distinct_field == "session_id" or (session_head and not ranked):
        measure = "sessions"
        distinct_field = None
    long_short = any(
        re.search(r"long|court", t.low[i.start : i.end]) for i in t.of("RANK_MOST") + t.of("RANK_LEAST")
    )
    session_word = any(i.value == "session_id" for i in t.items if i.kind in ("field", "introducer"))
    duration_words = [
        i for i in t.of("DURATION_WORDS") if not re.fullmatch(r"(?:en )?moyenne", t.low[i.start : i.end])
    ]
    sessions_before = follow_up and previous is not None and previous.measure in ("sessions", "duration")
    if (duration_words or long_short) and (
        measure == "sessions" or session_head or "session_id" in group_by or session_word or sessions_before
    ):  # "et elles ont duré combien en moyenne ?" after a count of sessions
        measure = "duration"
        if "session_id" in group_by and not ranked:
            group_by.remove("session_id")
    if t.of("SESSION_OPEN"):
        measure, session_state = "sessions", "open"
    if distinct_field and (t.of("DISTINCT_WORDS") or distinct_field not in group_by):
        measure, fld_for_distinct = "distinct", distinct_field
        if distinct_field in group_by and len(group_by) > 1:
            group_by.remove(distinct_field)  # "pour chaque schéma, combien d'objets distincts"
    if t.of("COVERAGE_WORDS"):
        measure = "coverage"
        group_by = []
    # "depuis J-7", "S-1": a relative date in shorthand, which no period rule reads
    if (rel := re.search(r"\b[JSMN]-\d+\b", t.raw, re.IGNORECASE)) is not None:
        return _not_understood(t, [rel.group(0)], None, notes, why="une date relative abrégée")
    if share:
        if re.search(r"\bratios?\b[^?]*\w ?/ ?\w", t.low):  # "ratio lectures / écritures": A over B
            return _not_understood(t, ["ratio … / …"], None, notes, why="un rapport entre deux comptes")
        if measure in ("sessions", "duration") or session_head or session_word:
            return _not_understood(t, ["part des sessions"], None, notes, why="une part de sessions")
        measure = "share"
        if share_filters.is_empty():
            return _not_understood(t, ["part de quoi"], None, notes)
        # "au moins une erreur": a count, not a percent
        if t.of("threshold") and not re.search(r"%|pour ?cent", t.low):
            return _not_understood(t, [t.raw[i.start : i.end] for i in t.of("threshold")], None, notes)
    lasts, firsts = t.of("LAST_WORDS"), t.of("FIRST_WORDS")
    if firsts and all(re.fullmatch(r"quand|a quelle (?:date|heure)", t.low[i.start : i.end]) for i in lasts):
        lasts = []
    when = [re.fullmatch(r"a quelle (date|heure)", t.low[i.start : i.end]) for i in lasts]
    if lasts and ranked and not group_by and not firsts and all(when):
        # "à quelle heure y a-t-il le plus de connexions": the busiest hour, not the last event
        group_by, limit, lasts = ["hour" if when[0] and when[0][1] == "heure" else "day"], limit or 1, []
    one_event = (  # "la dernière tentative en échec : sur quel compte, depuis quel poste ?": that event
        (lasts or firsts)
        and group_by
        and not t.of("GROUP_WORDS")
        and re.search(r"\b(?:la|le) (?:derniere?|premiere?)\b", t.low)
        and all(
            re.search(r"\bquel(?:le)?\s*$", t.before(h.start, 8))
            for h in t.of("field")
            if h.value in group_by
        )
    )
    if one_event and measure == "events":
        group_by, detail, order, limit = [], True, "newest" if lasts else "oldest", 1
        lasts = firsts = []
    if (
        measure == "events"
        and (lasts or firsts)
        and group_by
        and not limit
        and not re.search(r"\b(?:les|des)\s+(?:\d+\s+)?(?:derniers|dernieres|premiers|premieres)\b", t.low)
    ):
        measure = "last" if lasts else "first"  # "dernière activité par machine": one date per machine
        lasts = firsts = []
    if measure == "events" and (lasts or firsts):
        plural = (
            bool(
                re.search(
                    r"(?:les|des)\s+(?:\d+\s+)?(?:derniers|dernieres|premiers|premieres|plus anciens|plus recents)",
                    t.low,
                )
            )
            or limit
        )
        noun_after = re.search(
            r"(?:dernier|derniere|premier|premiere)\s+(?:evenement|event|action|operation|activite|acte|trace|entree)s?\b",
            t.low,
        )
        if noun_after:
            limit = limit or 1
        which = noun_after or re.search(
            r"quel(?:le)? (?:est|etait|a ete|fut) (?:le |la |l')?(?:dernier|derniere|premier|premiere)", t.low
        )
        if which:
            limit = 1
        asked_when = (
            re.search(
                r"\bquand\b|a quelle (?:date|heure)|\b(?P<w>date|heure) (?:exacte )?(?:de la|du|de l') ?(?:derni|premi)",
                t.low,
            )
            if not plural
            else None
        )
        if asked_when and asked_when["w"] and t.free(asked_when.start("w"), asked_when.end("w")):
            t.take(asked_when.start("w"), asked_when.end("w"))  # "heure de la dernière action": when
        if asked_when and noun_after and limit == 1 and not t.of("DETAIL_WORDS"):
            which, limit = None, None  # "c'est quand le premier événement ?": a date
        if plural or which:
            detail, order = True, "newest" if lasts else "oldest"
        else:
            measure = "last" if lasts else "first"
            order = None
    if measure == "sessions" and session_head and head is not None and head.asked and not counting:
        detail = True  # "quelles sessions ...": the sessions themselves
    details = t.of("DETAIL_WORDS") + t.of(
        "WHAT_DONE"
    )  # "qu'a fait SCOTT hier ?": what he did, event by event
    what_happened = [d for d in details if re.search(r"passe|y a eu quoi|neuf", t.low[d.start : d.end])]
    if what_happened and counting:
        details = [d for d in details if d not in what_happened]  # "il s'est passé quoi ? combien ?": a count
    listed = re.match(  # "toutes les connexions de ...", "les evenements de cette nuit sans ...": to see them
        r"^\W*(?:tous |toutes )?(?:les|ces) (?:\d+ )?(?:evenements?|events?|connexions?|deconnexions?|echecs?|"
        r"erreurs?|actions?|operations?|requetes?|suppressions?|modifications?|modifs?|sessions?|traces?)\b",
        t.low,
    )
    if listed and not counting and not ranked and not group_by and measure in ("events", "sessions"):
        details = [*details, Item(listed.start(), listed.start(), "DETAIL_WORDS", None)]
    if details and not group_by and measure in ("events", "sessions"):
        detail = True
        order = order if order in ("newest", "oldest") else "newest"
    if detail and measure in ("sessions", "duration"):
        pass
    if (t.of("COMPARE_WORDS") or ranked) and len(periods) < 2:
        several = [f for f, vals in include.items() if len(vals) >= 2 and f not in group_by]
        if len(several) > 1 and t.of("COMPARE_WORDS"):  # "comparer A et B en nombre d'INSERT, UPDATE": A, B
            said = [w.start for w in t.of("COMPARE_WORDS")]
            near = {
                f: min(abs(v.start - w) for v in t.of("value") if v.value[0] == f for w in said)
                for f in several
                if any(v.value[0] == f for v in t.of("value"))
            }
            several.sort(key=lambda f: near.get(f, len(t.low)))
        if several and (not group_by or (t.of("COMPARE_WORDS") and len(group_by) == 1)):
            group_by = [*group_by, several[0]]  # "SELECT vs INSERT, par utilisateur"
    if ranked and not group_by and measure == "events":
        nouns = [(i.start, i.value) for i in t.items if i.kind == "field" and i.value in ACTION_NOUN_FIELDS]
        nouns += [(m.start(), "sql_text" if m.group(0).startswith("requete") else "action_name")
                  for m in re.finditer(r"\b(?:requetes?|actions?|operations?|commandes?)\b", t.low)]  # fmt: skip
        # a bucket word of a period ("le moins actif ce mois-ci") is the period, not what is ranked
        bucket_words = [
            (m.start(), b) for rx, b in BUCKET_RX for m in rx.finditer(t.low) if t.free(m.start(), m.end())
        ]
        if nouns or bucket_words:
            start, chosen = min(nouns + bucket_words)
            group_by = [chosen]
            word = re.match(r"\S+", t.low[start:])
            t.take(start, start + (word.end() if word else 0))
            if (
                bucket_words
                and not nouns
                and re.search(r"\b(?:le|la|l'|quel|quelle)\s+(?:jour|heure|semaine|mois)\b", t.low)
            ):
                limit = limit or 1
    if ranked and not group_by and measure == "events" and follow_up and previous and previous.group_by:
        group_by = list(previous.group_by)  # "et le top 5 ?" after a breakdown: of the same groups
    if ranked and not group_by and measure == "events":
        return _not_understood(
            t, [t.low[ranked[0].start : ranked[0].end]], None, notes, why="le plus de quoi ?"
        )

    threshold = next((i.value for i in t.of("threshold")), None)
    window = next((i.value for i in t.of("window")), None)
    for item in t.of("duration_threshold"):  # "sessions de plus d'une demi-heure": those sessions
        if not (measure in ("sessions", "duration") or session_head or session_word or duration_words):
            return _not_understood(t, [t.raw[item.start : item.end]], None, notes, why="une durée de quoi ?")
        if group_by or re.search(r"\bmoyen", t.low):  # a threshold on each group's average duration
            return _not_understood(
                t,
                [t.raw[item.start : item.end]],
                None,
                notes,
                why="un seuil sur une durée moyenne par groupe",
            )
        measure, detail, order, group_by, limit, threshold = "duration", True, "newest", [], None, item.value
    if (
        threshold is not None
        and not threshold.window_minutes
        and (t.of("SEQUENCE_WORDS") or t.of("SEQUENCE_BACK"))
        and window
    ):
        threshold = None  # "dans les 5 minutes" of a sequence, not a count
    if threshold is not None and window and not threshold.window_minutes:
        threshold = threshold.model_copy(update={"window_minutes": window})
    having = None
    both_by_and = (
        re.search(r"\b(?:des?|d')\s*\S+\s+et\s+(?:des?|d')\s*\S+", t.low)
        and len(include.get("action_name", [])) == 2
    )
    for kind, name in (("only", "HAVING_ONLY"), ("never", "HAVING_NEVER"), ("both", "HAVING_BOTH")):
        words = t.of(name)
        if not (words or (kind == "both" and both_by_and and heads)) or not group_by:
            continue
        near = [(v.start, v.end, v.value[0]) for v in t.of("value") if not v.value[2] or kind != "both"]
        near += [(a.start, a.end, "action_name") for a, _, acts in action_items if acts]
        near = [n for n in near if n[2] != group_by[0]]
        lo, hi = (words[0].start, words[0].end) if words else (0, 0)
        near.sort(key=lambda n: (0, n[0] - hi) if n[0] >= hi else (1, lo - n[1]))  # what follows "que des"
        several = [f for f, vals in include.items() if len(vals) >= 2 and f != group_by[0]]
        several.sort(key=lambda f: f != "object_name")  # "HR.SALARIES et SALES.CUSTOMERS": the tables
        fld = several[0] if kind == "both" and several else near[0][2] if near else "action_name"
        if include.get(fld) and kind == "never" and words:
            said_before = any(n[2] == fld and n[1] <= lo for n in near)
            said_after = any(n[2] == fld and n[0] >= hi for n in near)
            if said_before or not said_after:  # "des SELECT mais jamais d'UPDATE": did one, never the other
                why = "« a fait ceci mais jamais cela » ne se dit pas en une seule condition"
                return _not_understood(t, [t.raw[lo:hi]], None, notes, why=why)
        if include.get(fld):
            having = Having(kind=kind, field=fld, values=include.pop(fld))  # type: ignore[arg-type]
            if fld == "object_name" and len(include.get("object_schema", [])) == len(having.values):
                include.pop("object_schema")  # "HR.SALARIES et SALES.CUSTOMERS": the schemas name the tables
            kept_cats = [] if fld == "action_name" else filters.categories
            filters = filters.model_copy(update={"include": include, "categories": kept_cats})
            if fld == "return_code" and kind == "never" and not t.of("failed"):
                # "jamais eu d'erreur ORA-01017": every user, not only those with failures
                filters = filters.model_copy(update={"failed": None})
            break
    sequence = None
    seq_words = [i for i in t.of("SEQUENCE_WORDS") if not re.search(r"meme", t.low[i.start : i.end])]
    seq_words = sorted(seq_words + t.of("SEQUENCE_BACK"), key=lambda i: i.start)
    if seq_words and len(action_items) >= 2:
        at = seq_words[0].start
        before_items = [a for a in action_items if a[0].end <= at] or action_items[:1]
        after_items = [a for a in action_items if a[0].start >= at] or action_items[1:]
        firsts_acts, thens = before_items[-1][2], after_items[0][2]
        if seq_words[0].kind == "SEQUENCE_BACK":
            firsts_acts, thens = thens, firsts_acts
        if firsts_acts and thens:
            same: list[str] = []
            for i in t.of("SAME_WORDS"):
                said = t.low[i.start : i.end]
                for pattern, fields in SAME_FIELDS.items():
                    if re.search(pattern, said):
                        same += fields
            sequence = Sequence(first=list(firsts_acts), then=list(thens))
            if "object_name" in group_by and not t.of("bucket"):
                group_by.remove("object_name")  # "un DROP d'une table suivi...": the table is the same one
            if same:
                sequence.same = list(dict.fromkeys(same))
            if window:
                sequence.within_minutes = window
            include.pop("action_name", None)
            filters = filters.model_copy(update={"include": include})
            window_said = (
                re.fullmatch(r"les (\d+) (heure|minute|jour)s?", periods[0].label) if periods else None
            )
            if window_said and not window and re.search(r"\bdans " + re.escape(periods[0].label), t.low):
                # "précédés, dans les 24 heures, d'un CREATE": the sequence's window, not a period
                sequence.within_minutes = (
                    int(window_said[1]) * {"heure": 60, "minute": 1, "jour": 1440}[window_said[2]]
                )
                periods = periods[1:]

    period = periods[0] if periods else None
    compare = periods[1] if len(periods) > 1 else None
    if compare is not None:  # "plus de DDL ce mois-ci que le mois dernier ?": the comparison shows it
        for m in re.finditer(r"\b(?:plus|moins|davantage)\b(?=.*\bqu(?:e\b|'))", t.low):
            if t.free(m.start(), m.end()):
                t.take(m.start(), m.end())
    if t.of("ANOMALY"):
        return _anomalies(t, period, notes)
    if re.search(r"\bchacun", t.low) and not group_by:  # "combien de fois chacun ?": each of what?
        return _not_understood(t, ["chacun"], None, notes)

    plan_args: dict[str, Any] = dict(
        measure=measure, field=fld_for_distinct, group_by=group_by[:2], filters=filters,
        share_of=share_filters if measure == "share" else None, threshold=threshold, having=having,
        sequence=sequence, session_state=session_state, order=order, limit=limit, period=period,
        compare=compare, detail=detail,
    )  # fmt: skip
    if follow_up and previous is not None:
        plan_args = _merge(previous, plan_args, t)
    try:
        plan = Plan(**plan_args)
    except ValueError:
        return _not_understood(t, _leftover(t) or [t.raw], None, notes)
    unknown = _unused_structure(t, plan) + _leftover(t)
    closest = {f: _closest(gaz, f, vals[0]) for f, vals in absent.items() if f not in INT_FIELDS}
    if unknown:
        return Reading(
            "not_understood", plan=plan, unknown=unknown, absent=absent, closest=closest, notes=notes
        )
    return Reading("plan", plan=plan, absent=absent, closest=closest, notes=notes, follow_up=follow_up)


def _unused_structure(t: Text, plan: Plan) -> list[str]:
    """Words that shape a question (sauf, à la fois, puis, part, le plus...) that the plan does not
    reflect: the question was only half read, so it is not answered."""
    f = plan.filters
    used = {
        "EXCLUDE_WORDS": bool(f.exclude or f.exclude_categories),
        "HAVING_BOTH": plan.having is not None,
        "HAVING_ONLY": plan.having is not None or bool(f.include) or bool(f.categories),
        "HAVING_NEVER": plan.having is not None or plan.session_state is not None,
        "SEQUENCE_WORDS": plan.sequence is not None,
        "SEQUENCE_BACK": plan.sequence is not None,
        "SAME_WORDS": plan.sequence is not None,
        "COMPARE_WORDS": plan.compare is not None or bool(plan.group_by),
        "RANK_MOST": bool(plan.group_by or plan.detail or plan.measure in ("first", "last", "duration")),
        "RANK_LEAST": bool(plan.group_by or plan.detail or plan.measure in ("first", "last", "duration")),
        "DISTINCT_WORDS": plan.measure in ("distinct", "sessions") or bool(plan.group_by),
        "DURATION_WORDS": plan.measure == "duration",
        "FIRST_WORDS": plan.measure in ("first", "coverage") or (plan.detail and plan.order == "oldest"),
        "LAST_WORDS": plan.measure in ("last", "coverage")
        or (plan.detail and plan.order in ("newest", None)),
    }
    words = []
    for kind, ok in used.items():
        if not ok:
            words += [
                t.raw[i.start : i.end].strip()
                for i in t.of(kind)
                if i.end > i.start
                and not re.fullmatch(r"quand|a quelle (?:date|heure)", t.low[i.start : i.end])
            ]
    return words


ANOMALY_DAYS = 7  # the window of an anomaly question that names no period: the last 7 whole days


def _anomalies(t: Text, period: Period | None, notes: list[str]) -> Reading:
    """ "Y a-t-il des activités suspectes cette semaine ?": the detectors, over a period only."""
    narrowing = [
        t.raw[i.start : i.end] for i in t.items if i.kind in ("value", "category", "field", "bucket")
    ]
    if narrowing:  # the detectors look at every user and object of the period
        return _not_understood(
            t, narrowing, None, notes, why="les anomalies se cherchent sur toute l'activité d'une période"
        )
    if period is None and t.now is not None and t.tz is not None:
        tomorrow = datetime.combine(t.now.astimezone(t.tz).date() + timedelta(days=1), dt_time(), tzinfo=t.tz)
        period = Period(
            start=tomorrow - timedelta(days=ANOMALY_DAYS),
            end=tomorrow,
            label=f"les {ANOMALY_DAYS} derniers jours",
        )
    plan = Plan(measure="anomalies", period=period)
    unknown = _leftover(t)
    if unknown:
        return Reading("not_understood", plan=plan, unknown=unknown, notes=notes)
    return Reading("plan", plan=plan, notes=notes)


_VAGUE_PERIOD = r"ces derniers temps|(?:tres )?recemment|dernierement|recente?s?"


_BEFORE_PREVIOUS = re.compile(
    r"\b(?:(?:la|le|l') ?)?(?P<unit>semaine|mois|jour|journee|annee) (?:d'avant|precedente?|d'encore avant)\b|\bla veille\b"
)


def _shift_back(period: Period, unit: str, tz: ZoneInfo, label: str) -> Period:
    """The period of the same length just before `period`, in local calendar units."""
    assert period.start is not None and period.end is not None
    start = period.start.astimezone(tz).replace(tzinfo=None)
    if unit == "mois":
        month = start.replace(day=1) - timedelta(days=1)
        lo, hi = month.replace(day=1, hour=0, minute=0, second=0, microsecond=0), start
    elif unit == "annee":
        lo, hi = start.replace(year=start.year - 1), start
    else:
        lo, hi = start - timedelta(days=7 if unit == "semaine" else 1), start
    return Period(start=lo.replace(tzinfo=tz), end=hi.replace(tzinfo=tz), label=label)


def _merge(previous: Plan, new: dict[str, Any], t: Text) -> dict[str, Any]:
    """A follow-up: what the new question says replaces the same part of the previous plan."""
    merged = previous.model_dump()
    nf: Filters = new["filters"]
    pf = previous.filters.model_copy(deep=True)
    include = {**pf.include, **nf.include}
    if "object_schema" in nf.include and "object_name" not in nf.include:
        include.pop("object_name", None)  # "et sur tout le schéma HR ?": the schema, not the previous table
    exclude = {
        k: list(dict.fromkeys([*pf.exclude.get(k, []), *nf.exclude.get(k, [])]))
        for k in {*pf.exclude, *nf.exclude}
    }
    merged["filters"] = Filters(
        include=include, exclude=exclude,
        categories=nf.categories or pf.categories,
        exclude_categories=list(dict.fromkeys([*pf.exclude_categories, *nf.exclude_categories])),
        failed=nf.failed if nf.failed is not None else pf.failed,
        sql_contains=nf.sql_contains or pf.sql_contains, hours=nf.hours or pf.hours,
        off_hours=nf.off_hours if nf.off_hours is not None else pf.off_hours,
    )  # fmt: skip
    shift = t.of("period_shift")
    if shift and previous.period is not None:
        shifted = _shift_back(previous.period, shift[0].value[0], t.tz, shift[0].value[1])
        if t.of("COMPARE_WORDS"):  # "compare avec la semaine d'avant": the previous period vs the one before
            merged["compare"] = shifted
        else:
            merged["period"], merged["compare"] = shifted, None
    elif t.of("period") and t.of("COMPARE_WORDS") and new["compare"] is None and previous.period is not None:
        merged["compare"] = new[
            "period"
        ]  # "compare avec la semaine dernière": the previous period vs this one
    elif t.of("period"):
        merged["period"], merged["compare"] = new["period"], new["compare"]
    if new["threshold"] is not None:  # "et avec plus de 1500 ?"
        merged["threshold"] = new["threshold"]
    which = re.search(r"\blesquel(?:le)?s\b", t.low)
    if new["detail"] and which and previous.group_by and not previous.detail:
        new = {**new, "detail": False, "order": None}  # "et parmi eux, lesquels ... ?": the same groups
    ends = re.fullmatch(
        r"\W*(?:et\s+)?(?:(?:seulement|juste|uniquement)\s+)?les\s+\d+\s+(premi|derni)\w*\W*", t.low
    )
    if ends and new["detail"] and previous.group_by and not previous.detail and new["limit"]:
        # "seulement les 3 premiers" after a breakdown: its first (or last) groups, not 3 events
        order = previous.order or "desc"
        if ends[1] == "derni":
            order = "asc" if order == "desc" else "desc"
        merged.update(limit=new["limit"], order=order)
        t.items = [i for i in t.items if i.kind not in ("FIRST_WORDS", "LAST_WORDS")]  # read here
        return merged
    if new["detail"]:
        keep = previous.measure if previous.measure in ("sessions", "duration") else "events"
        merged.update(detail=True, group_by=[], measure=keep, order=new["order"] or "newest",
                      limit=new["limit"], threshold=None)  # fmt: skip
    elif new["group_by"]:
        same = new["group_by"] == previous.group_by  # "et les moins lues ?" after the 5 most read: 5 too
        limit = new["limit"] or (previous.limit if same and new["order"] and previous.order else None)
        merged.update(group_by=new["group_by"], limit=limit, order=new["order"])
        if previous.detail:
            merged.update(detail=False)  # "qui les a faits ?" after a listing: a breakdown of those events
    if new["measure"] != "events":
        merged.update(
            measure=new["measure"], field=new["field"], share_of=new["share_of"], detail=new["detail"]
        )
        if new["measure"] != previous.measure and not new["group_by"]:
            merged.update(group_by=[], order=new["order"], limit=new["limit"])
    elif t.of("COUNT_WORDS") and not new["detail"]:
        merged.update(detail=False, order=None, limit=None)  # "et ça fait combien ?"
    return merged


def _not_understood(t: Text, words: list[str], plan: Plan | None, notes: list[str], why: str = "") -> Reading:
    return Reading("not_understood", plan=plan, unknown=words, notes=[*notes, why] if why else notes)
