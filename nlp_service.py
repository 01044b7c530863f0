# ruff: noqa: E501 (regular-expression tables read better unwrapped)
"""Understanding French audit questions: intent, entities linked to the data, time range, follow-ups.

`await analyze(question, store=..., previous=None, now=None)` returns an `models.Analysis` whose
`filters` hold exact stored values (run `filters.to_match()` as is) and whose time range is an
interval in settings.tz (end excluded), copied into `filters.start/end`.

How: rules on accent-folded text (time_parser, nlp_lexicon) and a gazetteer of the values present
in the audit trail (distinct values per field computed by MongoDB, cached per `audit_version()`).
spaCy (fr_core_news_sm) is loaded once by `load()`; its lemmas are a second chance for questions the
rules do not classify. Measured on tests/data/questions_fr.jsonl and bench/nlp.py (README).

Intents (models.Intent) and what the analytics layer should compute for each, always within
`filters.to_match()`:

- top_users: events per `dbusername`, ranked (group_by="dbusername"), `top_n` when asked
  ("le plus actif" → top_n=1).
- list_users: the distinct database users (group_by="dbusername") with their event count;
  with count_only, just how many distinct users.
- user_activity: what the user(s) in `filters.dbusername` (or os_username) did: their events,
  summarised per action_name and object; group_by when asked.
- top_actions: events per `action_name`, ranked (group_by="action_name").
- search_events: the matching events themselves, newest first (SQL text, binds, times...); also
  "montre les événements de TPETIT" and "les 5 dernières connexions de SYSTEM" (top_n=5,
  entities["sort"]=["-event_timestamp"]).
- count_events: how many events match (count_only=True); group_by set → counts per group.
- top_objects: events per `object_schema`.`object_name`, ranked (group_by="object_name").
- schema_objects: the objects of the schema(s) in filters.object_schema with their event count
  (group_by="object_name").
- schema_activity: events per `object_schema` (group_by="object_schema").
- object_changes: DDL events (filters.action_name holds the CREATE/ALTER/DROP/TRUNCATE actions
  asked, resolved against the data): who changed which object, when. "objets modifiés" / "quels objets
  a-t-il modifiés ?" means every change of structure (all CREATE/ALTER/DROP/TRUNCATE actions present),
  not only ALTER; changed rows are asked with "données / lignes modifiées", "mises à jour" (UPDATE).
- failed_logins: failed logons: filters.action_name=["LOGON"], failed=True; group_by when asked
  (e.g. per userhost / dbusername / hour).
- errors: statements that failed: failed=True (return_code != 0), per return_code when asked.
- anomalies: run the anomaly detectors (failed-logon bursts, off-hours DDL, mass DML, new host or
  program for a user, privilege grants) within the filters.
- off_hours: events outside business hours (BUSINESS_HOURS_START/END, weekends) within the
  filters; group_by when asked (default: per dbusername is a good summary).
- privileges: GRANT / REVOKE / ALTER USER events (filters.action_name) and privileges used; accounts
  changed, created or dropped ("quels comptes ont été modifiés ?") are ALTER / CREATE / DROP USER.
- time_distribution: event counts per time bucket: group_by is "hour" (peak hours), "day"
  (per day / trend), "weekday" or "week".
- clients: who connects from where: group_by is "client_program_name", "userhost", "terminal"
  or "os_username" (the one the question names; client programs by default).
- sessions: sessions (session_id) matching the filters: their user, host, program, start, end and
  event count; count_only → number of distinct sessions. The ranking asked is in entities["sort"], one
  of analytics.sessions' sort keys: "-duration" ("ont duré le plus longtemps", "les plus longues"),
  "-statements" ("le plus de requêtes"), "-events" ("le plus d'événements", "les plus actives"),
  "-failed" ("le plus d'erreurs": then failed is not a filter), "-start" ("les dernières"), "start"
  ("les premières"); absent → the default (latest first).
- help: what the assistant can do (no query).  small_talk: greetings, thanks (no query).
- unknown: not understood; ask the user to rephrase (suggestions). A count of something that is not
  an audit notion ("combien de patates hier") is unknown too, with confidence 0.3, the filters and
  period that were understood, and the word in entities["unknown_terms"] (never all events).

`count_only=True` means the user wants a number ("combien ..."), `group_by` a breakdown, `top_n`
a limit. `entities` is for display: users, os_users, hosts, terminals, programs, actions, schemas,
objects, sessions, return_codes, sql_text, time, and not_found (values named but absent from the
trail: they stay filters, so nothing matches; a name in capitals, or with a digit or "_", where only a
user fits — "qu'a fait XYZABC ?", "connexions de XYZ", "XYZ a-t-il ...", "l'utilisateur XYZ" — is such a
user), unknown_terms, sort (see sessions, search_events); `excluded_<key>` (e.g. excluded_users) lists what `filters.exclude` leaves out ("sauf SCOTT",
"hors comptes applicatifs", "sans les SELECT", `DBUSERNAME != 'X'`), and `time_invalid` the text of an
impossible date ("le 31 février"): that bound is left open (or the whole range out), never moved.
"sur toute la période", "depuis le début", "depuis toujours", "toutes dates confondues" mean no time
range at all: time_range is None and a follow-up drops the previous period (entities["time"] keeps
the words). ORA codes are read with or without "ORA-" ("l'erreur 942", "code 1031 ou 942").

Follow-ups: a question with a topic of its own switches the intent ("a-t-il eu des erreurs ?" after
object changes → errors of the same user and period); what the previous topic implied goes with it
(the DDL / GRANT / LOGON actions of object_changes, privileges, failed_logins; failed=True of errors).
"""

import asyncio
import re
import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from loguru import logger
from rapidfuzz import fuzz, process

from config import settings
from models import DIMENSIONS, Analysis, AuditFilters, Intent, TimeRange
from nlp_lexicon import (
    _VALUE_ITEM,
    ACCOUNT_CLASSES,
    ACTION_WORDS,
    COLUMN_FILTER,
    COLUMNS,
    COMMON_WORDS,
    CONTEXT_CUES,
    DDL_ENUM,
    DDL_GENERIC,
    DDL_LITERAL,
    DDL_PATTERNS,
    DDL_VERBS,
    FIELD_PRIORITY,
    INT_FIELDS,
    OBJECT_KINDS,
    Gazetteer,
    accounts_of_class,
    gazetteer,
)
from nlp_lexicon import AMBIGUOUS as AMBIGUOUS_VALUES
from time_parser import MONTHS, NUMBERS, WEEKDAYS, fold, parse_time

DDL_VERB_RX = {verb: re.compile(pattern) for verb, pattern in DDL_VERBS.items()}
SPACY_MODEL = "fr_core_news_sm"
_nlp = None
_nlp_lock = threading.Lock()


def load() -> Any:
    """Load spaCy's French model once (thread-safe; call it off the event loop)."""
    global _nlp
    with _nlp_lock:
        if _nlp is None:
            import spacy

            _nlp = spacy.load(SPACY_MODEL, exclude=["ner", "parser"])
            logger.info("nlp: spaCy {} loaded ({})", SPACY_MODEL, ", ".join(_nlp.pipe_names))
    return _nlp


def is_loaded() -> bool:
    return _nlp is not None


# --------------------------------------------------------------------------- intent cues

_W = r"(?:\s+[\w'-]+){0,3}?\s+"  # up to three words between two cues
_LOGIN = r"(?:connexions?|connections?|conexions?|logons?|logins?|authentifications?|connecte\w*)"
_FAIL = r"(?:echou\w*|echecs?|ratee?s?|refuse\w*|rejete\w*|invalides?|incorrecte?s?|erronee?s?|manquee?s?|failed|failures?|fail|infructueu\w*|avortee?s?|bloque\w*|impossibles?)"

INTENT_CUES: dict[Intent, list[tuple[float, re.Pattern]]] = {
    intent: [(w, re.compile(p)) for w, p in cues]
    for intent, cues in {
        Intent.HELP: [
            (
                4,
                r"que (?:sais|peux)[- ]tu|tu (?:sais|peux) faire|qu'est[- ]ce que tu (?:sais|peux)|\baide\b|\bhelp\b"
                r"|comment (?:ca marche|t'utiliser|utiliser|tu fonctionnes)|quelles? (?:questions|types? de questions)"
                r"|exemples? de questions|que (?:puis|peux)[- ]je (?:te )?demander|tes (?:fonctionnalites|capacites)"
                r"|a quoi (?:tu )?sers?|quoi demander|mode d'emploi|tu fais quoi|\baider\b|\baidez\b",
            ),
            (
                2.2,
                r"comment (?:(?:je|j'|on) ?(?:fais|fait|peux|peut|dois|doit|arrive)|faire|puis[- ]je|peut[- ]on|dois[- ]je)"
                r"\s+(?:pour\s+|a\s+)?(?:t'|l'|te |le |la |les )?(?:interroger|utiliser|poser|questionner|consulter"
                r"|chercher|rechercher|demander|servir|explorer|analyser)",
            ),
        ],
        Intent.SMALL_TALK: [
            (
                3,
                r"^\W*(?:bonjour|salut|bonsoir|hello|coucou|merci|ok|d'accord|au revoir|bye|ca va|bravo|super"
                r"|genial|parfait|cool|hey|yo|bonne journee|a plus|top merci)\b",
            ),
            (3, r"qui es[- ]tu|tu es qui|t'es qui|comment (?:vas[- ]tu|tu vas|ca va)|tu t'appelles|ton nom"),
        ],
        Intent.FAILED_LOGINS: [
            (
                4,
                _LOGIN
                + _W
                + _FAIL
                + "|"
                + _LOGIN
                + r"\s+"
                + _FAIL
                + "|"
                + _FAIL
                + _W
                + r"(?:de |d')?"
                + _LOGIN,
            ),
            (4, _FAIL + r"\s+(?:de |d')?" + _LOGIN),
            (
                4,
                r"(?:n'arriv\w*|ne parvien\w*|n'(?:a|ont|avait|avaient) pas (?:pu|reussi)|ne (?:peu\w*|pouvai\w*) pas|impossible)"
                r"\s+(?:pas\s+)?(?:a\s+|de\s+)?(?:se\s+|s')(?:connecter|authentifier|logger|loguer|identifier)"
                r"|ora-?0?1017|\b1017\b|brute[- ]?force|force brute|mauvais mots? de passe|mots? de passe (?:errone|incorrect|faux)"
                r"|logon failures?|failed logons?|echecs? d'authentification|echecs? de login|bourrage|trompe\w* de mots? de passe",
            ),
        ],
        Intent.ERRORS: [
            (
                2.5,
                r"\berreurs?\b|\bechou\w*|\bechecs?\b|ora-?\d{3,5}|codes? (?:de )?retour|return_code|plante\w*|en erreur"
                r"|\bfailed\b|\bfail\w*|\brefuse\w*|\bko\b|non abouti\w*|\bratee?s?\b|\bavortee?s?\b|\bfautes?\b",
            ),
            (2, r"\b(?:ont|a|avaient|qui ont) (?:echoue|plante)|\bacces refuse\w*|\btentatives? d'acces"),
        ],
        Intent.ANOMALIES: [
            (
                4.6,
                r"suspect\w*|anormal\w*|anomal\w*|inhabituel\w*|bizarre\w*|etrange\w*|louche\w*|incidents?"
                r"|intrusions?|attaques?|menaces?|\brisques?\b|alertes?|comportements?|atypiques?|inquietant\w*"
                r"|dangereu\w*|malveillant\w*|compromi\w*|fraude\w*|exfiltration|a surveiller|inusuel\w*|irregul\w*"
                r"|pas normal|sortent de l'ordinaire|signaux faibles|a risque|preoccupant\w*|massi\w*|en masse"
                r"|nouvel\w* (?:machines?|postes?|programmes?|hotes?)|jamais vue?s?",
            ),
        ],
        Intent.OFF_HOURS: [
            (
                6,
                r"hors (?:des )?(?:heures|horaires)|en dehors des (?:heures|horaires)|heures? (?:non[- ])?ouvr\w*"
                r"|\bla nuit\b|\bde nuit\b|nocturne\w*|\bweek-?ends?\b|tard le soir|tot le matin|heures? tardives?"
                r"|horaires? (?:inhabituel|atypique|decale)\w*|apres (?:les heures|le travail|(?:19|20|21|22)\s?h)"
                r"|avant (?:6|7|8)\s?h|pendant la nuit|en pleine nuit|samedi ou dimanche|le dimanche|le samedi"
                r"|jours? feries?|off[- ]hours|heures? creuses|hors bureau",
            ),
        ],
        Intent.PRIVILEGES: [
            (
                4,
                r"privileges?|\bdroits?\b|\bgrants?\b|\brevokes?\b|\broles?\b|octroi\w*|revoqu\w*|revocation\w*"
                r"|alter user|habilitations?|permissions?|elevations?|\bescalad\w*|mots? de passe"
                r"|comptes? modifie\w*|\bsysdba\b|accorde\w*|attribue\w*",
            ),
        ],
        Intent.OBJECT_CHANGES: [
            (
                4.5,
                r"\bddl\b|changements? de (?:structure|schema)|modifications? de (?:structure|schema)"
                r"|drop table|create table|alter table|truncate|create index|objets? (?:crees?|creees?|supprimes?"
                r"|modifies?|detruits?|droppes?|alteres?)|structure|\bdrops?\b|\btronqu\w*",
            ),
        ],
        Intent.TIME_DISTRIBUTION: [
            (
                4.5,
                r"heures? de pointe|pics? d'activite|\bpics?\b|a quelles? heures?|quelle heure|quelles heures"
                r"|moments? de la journee|tendance|evolution|chronologie|histogramme|courbe|repartition (?:horaire"
                r"|temporelle|dans le temps|par (?:heure|jour|semaine))|jours? (?:le |la )?plus (?:charge|actif|occupe)"
                r"|heures? (?:le |la )?plus (?:charge|actives?|occupe)|\bquand\b|heure par heure|jour par jour"
                r"|volume (?:quotidien|horaire|journalier|hebdomadaire)|activite (?:quotidienne|horaire|journaliere"
                r"|hebdomadaire)|rythme|quel jour|quels jours|plage horaire|creneaux?|(?:le |la )?plus calme",
            ),
        ],
        Intent.CLIENTS: [
            (
                3.5,
                r"programmes?|applications? (?:cliente|utilisee|client)\w*|\boutils?\b|logiciels?|clients? (?:sql|oracle|utilise)\w*"
                r"|\bmachines?\b|\bhotes?\b|\bhosts?\b|\bpostes?\b|\bterminau\w*|\bterminal\b|utilisateurs? (?:os|systeme)"
                r"|comptes? (?:os|systeme)|\bos users?\b|\bd'ou\b|depuis quel\w*|adresses?|\bip\b|provenance"
                r"|ordinateurs?|\bpc\b|\bserveurs?\b|quels? clients?|type de client|\bvia quoi\b",
            ),
        ],
        Intent.SESSIONS: [
            (4, r"\bsessions?\b|sessionid|session_id"),
            (
                1,
                r"^\W*(?:(?:quelles?|les|la|des|top\s*\d*\s*(?:des)?|liste des|affiche les|montre les)\s+)?(?:\d+\s+)?sessions?\b",
            ),
        ],
        Intent.TOP_USERS: [
            (
                4,
                r"utilisateurs? (?:le |les |la )?plus (?:actif|present|gros|frequent|occupe|connecte|sollicit)\w*"
                r"|(?:top|classement|palmares)\s*(?:\d+\s*|\w+\s+)?(?:des |d')?(?:utilisateurs|comptes|users)"
                r"|qui (?:a |fait |genere |est )(?:\w+\s+){0,3}?le plus|^\W*qui (?:ont|font|generent|sont) (?:[\w'-]+\s+){0,3}?le plus"
                r"|(?:utilisateurs?|comptes?|users?|personnes?) (?:qui )?(?:a|ont|fait|font|genere\w*|est|sont|effectue\w*|realise\w*|execute\w*|lance\w*"
                r"|passe\w*|cumule\w*|totalise\w*) (?:[\w'-]+\s+){0,3}?le plus|le plus (?:actif|d'activite)|les plus actifs"
                r"|qui travaille le plus|gros utilisateurs|plus grand nombre d'(?:actions|evenements)"
                r"|comptes? (?:le |les )?plus (?:actif|utilise)\w*|qui sont les plus|le plus de (?:requetes|actions|evenements)"
                r"|plus (?:gros|grands) consommateurs|utilisateurs? (?:tres|super) actifs|top users?|les \+ actifs"
                r"|utilisateurs? (?:les |le )?plus act\w*|le plus d'(?:evenements|actions|activite|requetes)",
            ),
        ],
        Intent.LIST_USERS: [
            (
                3,
                r"(?:liste|quels|quelles|lister|tous les|toutes les|affiche|donne|montre|combien|nombre)\w*\s+"
                r"(?:\w+\s+){0,2}?(?:d'|de |des )?(?:utilisateurs|comptes|users|personnes)|\b(?:les|des) (?:utilisateurs|users)\b"
                r"|qui (?:s'est|se sont|a|ont|s'etait) (?:\w+\s+)?connecte\w*|qui sont les utilisateurs"
                r"|utilisateurs (?:distincts|differents|actifs|presents|connus|enregistres)"
                r"|\bquels? (?:comptes|utilisateurs)\b|\bqui\b (?:a|ont) (?:acce|utilise|travaille)\w*",
            ),
            (
                2.6,
                r"^\W*(?:(?:bonjour|salut|bonsoir|dis|dites|stp|svp|merci)\W+(?:[\w-]+\W+){0,4}?)?qui\b"
                r"(?! (?:est|sont) (?:le|la|les) plus)|\b(?:dire|savoir|sais|voir) qui\b|\bqui\s*\?*\s*$|\bwho\b",
            ),
        ],
        Intent.USER_ACTIVITY: [
            (
                3,
                r"qu'a fait|qu'ont fait|qu'est[- ]ce qu'(?:a|ont) fait|ce qu'(?:a|ont) fait|a fait quoi|ont fait quoi"
                r"|activites? d[eu]\b|activites? de l'utilisateur|actions? d[eu]\b|historique d[eu]\b|que fait"
                r"|\bfait par\b|\bfaites? par\b|\beffectuee?s? par\b|\brealisee?s? par\b|\bmenees? par\b|traces? d[eu]\b"
                r"|resume d[eu]\b|comportement d[eu]|que fait|qu'a-t-il|qu'a-t-elle|qu'ont-ils"
                r"|travaille sur quoi|agissements|journal d[eu]\b|activite\b.*\bpour l'utilisateur",
            ),
        ],
        Intent.TOP_ACTIONS: [
            (
                3.5,
                r"\bque (?:fait|font|execute)[\w-]*(?:\s+[\w'-]+)?\s+le plus\b|qu'est[- ]ce (?:qu'on|que \w+) (?:fait|font|execute)\w* le plus"
                r"|actions? (?:les |la )?plus (?:frequente|courante|repandue|nombreuse|execute)\w*|types? d'actions?"
                r"|repartition (?:des |par )(?:actions?|types?|operations?)|quelles? (?:actions?|operations?|commandes?)"
                r"|quels types|operations? (?:les )?plus|commandes? (?:les )?plus|statistiques? (?:des|par) actions?"
                r"|(?:top|classement)\s*\d*\s*(?:des )?(?:actions?|operations?|commandes?)|\bactions? frequente\w*"
                r"|nature des (?:actions|operations)|\bverbes? sql",
            ),
        ],
        Intent.TOP_OBJECTS: [
            (
                3.5,
                r"objets? (?:les |le |la )?plus|tables? (?:les |le |la )?plus|(?:objets?|tables?) [\w' -]*(?:les |le |la )plus"
                r"|objets? (?:accede|consulte|touche|sollicite|utilise)\w*"
                r"|(?:top|classement)\s*\d*\s*(?:des )?(?:tables?|objets?)|quelles? tables|quels? objets"
                r"|tables? (?:accedee|consultee|lue|interrogee|utilisee|sollicitee|touchee)s?",
            ),
            (1.5, r"\bles? plus\b|\bla plus\b|\btop\b|\bclassement\b"),
        ],
        Intent.SCHEMA_OBJECTS: [
            (
                3,
                r"(?:objets?|tables?|contenu) (?:du |de |d'|dans le |dans )?(?:schema|owner|proprietaire)"
                r"|objets? (?:de|du|dans)\b|tables? (?:de|du|dans)\b|quels? objets|quelles? tables|liste des (?:objets|tables)",
            ),
        ],
        Intent.SCHEMA_ACTIVITY: [
            (
                4.5,
                r"\bpar schemas?\b|activite (?:par|des|de chaque|sur les) schemas?|schemas? (?:les |le )?plus"
                r"|(?:top|classement)\s*\d*\s*(?:des )?schemas?"
                r"|quels? schemas?|(?:les |chaque |tous les )schemas|sur quels? schemas?|repartition par schemas?"
                r"|volume par schemas?|schemas (?:actifs|utilises|sollicites|touches)",
            ),
        ],
        Intent.SEARCH_EVENTS: [
            (
                1.5,
                r"contenant|contient|\bmot[- ]cle|avec le (?:mot|texte)|qui contiennent|textes? sql|requetes? sql"
                r"|\bliste (?:des|les) (?:evenements|actions|requetes)|affiche|montre|\bdetails?\b|journal|\blogs?\b"
                r"|evenements|\btraces\b|\blignes d'audit|\bquelles? requetes\b|\bles requetes\b|\brecherche"
                r"|\btrouve\b|\bcherche\b|\bsql_text\b|\bliste\b|\blister\b|\bvoir\b",
            ),
        ],
        Intent.COUNT_EVENTS: [
            (
                1.5,
                r"\bcombien\b|\bnombre\b|\btotal\b|\bcompte(?:r|z)?\b|\bvolume\b|\bcomptage\b|\bquantite\b",
            ),
        ],
    }.items()
}

# Which intents a breakdown implies when nothing more specific was asked.
GROUP_INTENT = {
    "dbusername": Intent.TOP_USERS, "action_name": Intent.TOP_ACTIONS, "object_name": Intent.TOP_OBJECTS,
    "object_schema": Intent.SCHEMA_ACTIVITY, "client_program_name": Intent.CLIENTS, "userhost": Intent.CLIENTS,
    "terminal": Intent.CLIENTS, "os_username": Intent.CLIENTS, "hour": Intent.TIME_DISTRIBUTION,
    "day": Intent.TIME_DISTRIBUTION, "weekday": Intent.TIME_DISTRIBUTION, "week": Intent.TIME_DISTRIBUTION,
    "session_id": Intent.SESSIONS, "return_code": Intent.ERRORS,
}  # fmt: skip
DEFAULT_GROUP = {
    Intent.TOP_USERS: "dbusername", Intent.LIST_USERS: "dbusername", Intent.TOP_ACTIONS: "action_name",
    Intent.TOP_OBJECTS: "object_name", Intent.SCHEMA_OBJECTS: "object_name",
    Intent.SCHEMA_ACTIVITY: "object_schema",
}  # fmt: skip
# Tie-break: earlier wins.
PRIORITY = [
    Intent.HELP, Intent.FAILED_LOGINS, Intent.OBJECT_CHANGES, Intent.PRIVILEGES, Intent.ANOMALIES,
    Intent.OFF_HOURS, Intent.TOP_USERS, Intent.TOP_OBJECTS, Intent.TOP_ACTIONS, Intent.SCHEMA_ACTIVITY,
    Intent.SCHEMA_OBJECTS, Intent.TIME_DISTRIBUTION, Intent.SESSIONS, Intent.ERRORS, Intent.CLIENTS,
    Intent.LIST_USERS, Intent.USER_ACTIVITY, Intent.SEARCH_EVENTS, Intent.COUNT_EVENTS, Intent.SMALL_TALK,
]  # fmt: skip

_GROUP_BY = [
    (re.compile(p), g)
    for p, g in [
        (r"\bpar (?:utilisateurs?|comptes?|users?) (?:os|systeme)\b|\bpar os_?user\w*", "os_username"),
        (
            r"\bpar jour de (?:la )?semaine\b|\bselon le jour de la semaine\b|\bquel(?:s)? jours? de la semaine",
            "weekday",
        ),
        (
            r"\bpar (?:utilisateurs?|users?|comptes?|personnes?|dbusername|username)\b|\bpour chaque utilisateur",
            "dbusername",
        ),
        (
            r"\bpar (?:actions?|types? d'actions?|types? d'operations?|types?|operations?|commandes?|action_name)\b"
            r"|\bpour chaque action",
            "action_name",
        ),
        (r"\bpar schemas?\b|\bpour chaque schema|\bpar object_schema", "object_schema"),
        (r"\bpar (?:objets?|tables?|object_name)\b|\bpour chaque (?:table|objet)", "object_name"),
        (
            r"\bpar (?:programmes?|applications?|outils?|clients?|logiciels?|client_program_name)\b",
            "client_program_name",
        ),
        (
            r"\bpar (?:machines?|hotes?|hosts?|postes?|serveurs?|userhost|ordinateurs?|provenance)\b",
            "userhost",
        ),
        (r"\bpar termina(?:l|ux)\b", "terminal"),
        (r"\bpar sessions?\b", "session_id"),
        (
            r"\bpar (?:codes?(?: de retour| d'erreur| retour)?|types? d'erreurs?|erreurs?|return_code)\b",
            "return_code",
        ),
        (r"\bpar (?:politiques?|policies|polices)\b", "unified_audit_policies"),
        (r"\bpar privileges?\b", "system_privilege_used"),
        (r"\bpar (?:types? d')?authentification\b", "authentication_type"),
        (
            r"\bpar heures?\b|\bheure par heure\b|\bhoraire\b|\bheures? de pointe\b|\bquelles? heures?\b"
            r"|\bquelle heure\b|\btranches? horaires?",
            "hour",
        ),
        (r"\bpar semaines?\b|\bhebdomadaire\b|\bsemaine par semaine", "week"),
        (
            r"\bpar jours?\b|\bjour par jour\b|\bquotidien\w*|\bjournali\w*|\bpar date\b|\bquel jour\b|\bquels jours\b",
            "day",
        ),
    ]
]
_NUMW = (
    r"(?:\d{1,3}|"
    + "|".join(sorted((k for k in NUMBERS if k not in ("un", "une")), key=len, reverse=True))
    + ")"
)
_TOP_N = [
    re.compile(r"\btop\s*-?\s*(?P<n>" + _NUMW + r")\b"),
    re.compile(r"\b(?:les|des|aux)\s+(?P<n>" + _NUMW + r")\s+(?:premier|premiere|principa|plus|meilleur|\w+\s+(?:les |le )?plus)\w*"),
    re.compile(r"\b(?P<n>" + _NUMW + r")\s+(?:utilisateurs|comptes|objets|tables|actions|programmes|machines|schemas"
               r"|sessions|heures|jours|hotes|postes|operations|users)\s+(?:\w+\s+){0,2}?(?:les |le )?plus\b"),
    re.compile(r"\b(?:premiers|premieres)\s+(?P<n>" + _NUMW + r")\b"),
]  # fmt: skip
_TOP_ONE = re.compile(
    r"\b(?:quel(?:le)? est l[ae']\s*|l')(?:utilisateur|compte|objet|table|action|schema|programme|machine|heure"
    r"|jour|operation|poste|session|user)\w*\s+(?:\w+\s+){0,3}?(?:le |la )?plus\b"
    r"|\bquel(?:le)?s?\s+(?:utilisateur|compte|objet|table|action|schema|programme|machine|heure|jour)\s+"
    r"(?:[\w'-]+\s+){0,4}?(?:le |la )?plus\b"
    r"|(?:^\W*|\b(?:le|la|l')\s*)(?:utilisateur|compte|objet|table|action|schema|programme|machine|heure|jour"
    r"|operation|poste|user|session)\s+(?:le|la) (?:plus|\+)(?!\w)|\bqui est (?:le|la) plus\b"
    r"|\b(?:l'utilisateur|le compte|l'objet|la table|l'action|le schema|le programme|la machine|l'heure|le jour)"
    r"\s+(?:le |la )?plus (?:actif|active|consulte|utilise|frequent|charge|occupe|sollicite)\w*"
)
# "quels codes retour ...", "les erreurs les plus fréquentes": a breakdown per return code.
_ERROR_KINDS = re.compile(
    r"\bquel(?:le)?s? (?:codes?|types? d'erreurs?|erreurs? (?:sont|reviennent))|\bcodes? (?:de |d')?(?:retour|erreur)s?\b(?!\s*Q)"
    r"|\berreurs? (?:les |la )?plus (?:frequent|courant|repandu)\w*|\btypes? d'erreurs?"
)
_COUNT = re.compile(
    r"\bcombien\b|\bnb\b|\bnombre\b|\btotal\b|\bcompter\b|\bcomptez\b|\bcompte les\b|\bcomptage\b|\bquantite\b"
    r"|\bvolume\b"
)
_FOLLOW = re.compile(
    r"^\W*(?:et|mais|puis|ensuite|seulement|uniquement|juste|que|pareil|idem|meme chose|maintenant|plutot|pas"
    r"|sauf|hors|a part|excepte\w*|hormis|exclu\w*|en excluant|retire\w*|enleve\w*"
    r"|filtre|limite|restreins|garde|sans|avec|aussi|egalement|pour|sur|en|le|la|les|par|top|trie|seul|ok et)\b"
    r"|\b(?:lui|elle|eux|celui-ci|celle-ci|ce compte|cet utilisateur|cette table|meme periode|meme question"
    r"|la meme|le meme|a-t-il|a-t-elle|ont-ils|ils|aussi|lesquel\w*|laquelle|lequel|les a|l'a)\b"
)
# "combien de X": what is counted (one space: a blanked-out value or period is not a word).
_COUNTED = re.compile(
    r"\b(?:combien|nombre|nb|total|quantite|volume)(?: (?:de|des|du)(?: (?:la|les))? | d')(?P<w>[a-z][a-z-]*)"
)
# Nouns of what an audit trail holds, folded and singular (a plural "s" is ignored).
AUDIT_NOUNS = {
    "evenement", "event", "evt", "action", "requete", "query", "queries", "operation", "utilisateur", "user",
    "compte", "personne", "gens", "connexion", "connection", "conexion", "connextion", "login", "logon", "logoff",
    "deconnexion", "authentification", "session", "erreur", "echec", "tentative", "table", "objet", "vue",
    "index", "schema", "ligne", "fois", "enregistrement", "entree", "trace", "machine", "hote", "host",
    "poste", "terminal", "terminaux", "programme", "client", "application", "appli", "outil", "logiciel",
    "privilege", "droit", "role", "grant", "revoke", "acces", "modification", "modif", "suppression",
    "insertion", "lecture", "mise", "creation", "changement", "commande", "ordre", "instruction",
    "transaction", "appel", "procedure", "execution", "statement", "temps", "jour", "heure", "minute",
    "semaine", "mois", "code", "alerte", "anomalie", "incident", "adresse", "ip", "serveur", "ordinateur",
    "pc", "mot", "politique", "policie", "policy", "entre", "donnee", "delete", "select", "insert",
    "update", "ddl", "dml", "sql", "audit", "activite", "evenemen", "element", "resultat", "cas",
    "compte-rendu", "occurrence", "type", "valeur", "nom", "identifiant", "id", "administrateur", "admin", "dba",
}  # fmt: skip
# "les 5 dernières connexions", "la dernière action de SCOTT", "les connexions les plus récentes".
_LATEST = re.compile(
    r"\b(?:(?:les|des|ses|leurs|mes|nos)\s+(?:(?P<n>"
    + _NUMW
    + r")\s+)?(?:derniers|dernieres|plus recents|plus recentes)"
    r"|(?P<one>(?:la|le|sa|son|l')\s*(?:derniere|dernier|plus recente?)))\s+(?P<noun>[a-z]+)"
    r"|\b(?:les|des|ses|la|le|sa|son)\s+(?P<noun2>[a-z]+)\s+(?:les |la |le )?plus recent"
)
EVENT_NOUNS = {
    "evenement", "event", "evt", "action", "requete", "operation", "connexion", "connection", "conexion", "logon",
    "login", "deconnexion", "logoff", "erreur", "echec", "tentative", "suppression", "delete", "modification",
    "update", "lecture", "select", "insertion", "insert", "commande", "ordre", "instruction", "grant", "revoke",
    "trace", "ligne", "entree", "activite", "acces", "execution", "authentification", "statement", "fois",
}  # fmt: skip
_LATEST_INTENTS = {Intent.SEARCH_EVENTS, Intent.USER_ACTIVITY, Intent.LIST_USERS, Intent.ERRORS,
                   Intent.FAILED_LOGINS, Intent.PRIVILEGES, Intent.TOP_ACTIONS, Intent.TOP_OBJECTS,
                   Intent.UNKNOWN}  # fmt: skip
# What the events themselves are asked for by ("montre les événements de TPETIT").
_EVENT_LIST = re.compile(
    r"\b(?:evenements?|evts?|events?|lignes? d'audit|enregistrements?|entrees? d'audit|traces? d'audit"
    r"|details? des (?:actions|requetes)|requetes sql|textes? sql|ordres sql)\b"
)
# How the sessions are ranked (analytics.sessions' sort keys).
_SESSION_SORTS = [
    (re.compile(p), key)
    for p, key in [
        (
            r"\bdur\w* (?:le |la )?plus|\bplus longu\w*|\bplus long(?:temps)?\b|\bles? plus de temps|\bduree",
            "-duration",
        ),
        (r"\bplus (?:de |d')(?:erreurs?|echecs?)|\ble plus (?:echoue|plante)", "-failed"),
        (
            r"\bplus (?:de |d')(?:requetes?|instructions?|ordres?|commandes?|operations?|statements?|actions?)",
            "-statements",
        ),
        (
            r"\bplus (?:d'evenements?|d'activite|charge\w*|actives?|intenses?|volumineuses?|grosses?)|\bplus (?:gros|grandes?)\b",
            "-events",
        ),
        (r"\bdernier\w*|\bderniere\w*|\bplus recent\w*|\bles? plus tard", "-start"),
        (r"\bpremier\w*|\bpremiere\w*|\bplus ancien\w*|\ble plus tot", "start"),
    ]
]
_WEAK_INTENTS = {
    Intent.SEARCH_EVENTS,
    Intent.COUNT_EVENTS,
    Intent.SMALL_TALK,
    Intent.TOP_OBJECTS,
    Intent.LIST_USERS,
}
_SESSION = re.compile(r"\bsessions?\s*(?:n[°o]\.?\s*|numero\s+|id\s+|#\s*)?(?P<id>\d{3,})\b")
_ORA = re.compile(
    r"\bora-?\s?0*(?P<code>\d{2,5})\b|\bcodes? (?:de |d')?(?:retour|erreur)\s+(?P<code2>\d{2,5})\b"
    r"|(?:(?<=\berreur )|(?<=erreurs )|(?<=\bcode )|(?<=codes )|(?<=return_code ))(?P<code3>(?:n[°o]\.?\s*|numero\s+)?0*\d{2,5})\b(?!\s*(?:h\b|heures?|jours?|min|derni|premi|:))"
)
_ORA_MORE = re.compile(
    r"\s*(?:,|\bet\b|\bou\b)\s*(?:(?:l'|les? |codes? |erreurs? )?(?:ora\s*-?\s*)?)0*(?P<code>\d{3,5})\b"
)
_SCHEMA_OBJ = re.compile(r"(?<![\w@.])(?P<s>[a-z_][\w$#]*)\.(?P<o>[a-z_][\w$#]*)(?![\w.])")
_QUOTED = re.compile(r"(?:contenant|contient|contiennent|avec|mot[- ]cle|texte|sql_text|mentionnant|incluant|qui parlent de)"
                     r"\s+(?:le mot\s+|le texte\s+|la chaine\s+|l'expression\s+)?(?P<q>'[^']+'|\"[^\"]+\"|«[^»]+»)")  # fmt: skip
_CONTAINS = re.compile(r"(?:contenant|contient|contiennent|mentionnant|incluant|mot[- ]cle)\s+(?:le mot\s+|le texte\s+|la chaine\s+|le terme\s+)?"
                       r"(?P<w>[\w$#.%-]+)")  # fmt: skip
_ORA_PHRASES = [
    (re.compile(r"\b(?:tables?|vues?|objets?) inexistante?s?|n'existe pas|does not exist"), 942),
    (re.compile(r"\binsufficient privileges?|privileges? insuffisants?|droits? insuffisants?"), 1031),
]
_CLIENT_WORD_BEFORE_ENTITY = re.compile(
    r"\b(?:utilisateurs? (?:os|systeme)|comptes? (?:os|systeme)|machines?|hotes?|hosts?|postes?|serveurs?|termina(?:l|ux)|programmes?|outils?|logiciels?|applis?"
    r"|applications?|ordinateurs?)\s+(?:l[ae]\s+|d[eu]\s+)?(?=Q)"
)
_GRANTEE = re.compile(r"\b(?:a|au profit de|pour|vers)\s+$")
_TOKEN = re.compile(r"[\w$#@][\w$#@./-]*[\w$#]|[\w$#]")
_USER_NAMED = re.compile(r"(?:l'utilisateur|utilisateur|le compte|compte|user|l'user)\s+$")
# Where a word can only be a user's name (see _unknown_user).
_USER_SLOT_STRONG = re.compile(
    r"(?:\bqu'(?:a|ont|avait|avaient)|\bqu'est[- ]ce qu'(?:a|ont)|\bce qu'(?:a|ont)|\bque)\s+fait\s+$"
)
_USER_SLOT = re.compile(
    r"(?:\bpar|\bpour|\bchez)\s+$|\b(?:activites?|actions?|historique|traces?|resume|journal|evenements?|connexions?"
    r"|deconnexions?|sessions?|requetes?|operations?|erreurs?|echecs?|suppressions?|modifications?|lectures?"
    r"|insertions?|commandes?|acces|droits?|privileges?|logons?|logoffs?|deletes?|selects?|updates?|inserts?|grants?)"
    r"\s+(?:(?:faite?s?|effectuee?s?|realisee?s?) par\s+|de\s+|d')$"
)
_USER_SLOT_AFTER = re.compile(
    r"\s+(?:s'est|se sont|s'etait|(?:a|ont|avait)-t-(?:il|elle|ils|elles)|(?:a|ont|avait|n'a|n'ont)\s+"
    r"(?:(?:pas|t-il|t-elle|deja|bien|encore)\s+)?(?:fait|supprime|modifie|cree|lu|execute|consulte|accede|eu|lance"
    r"|touche|insere|mis|change|tente|essaye|reussi|echoue|droppe|vide|tronque|accorde|revoque|donne|retire)\w*)"
)
# Capitals that are not names: SQL words, acronyms, column names.
NOT_NAMES = {
    "sql", "ddl", "dml", "dcl", "ora", "os", "ip", "pc", "dba", "sysdba", "sysoper", "id", "sid", "top", "and",
    "or", "not", "in", "like", "is", "null", "table", "tables", "index", "view", "views", "user", "users", "role",
    "roles", "procedure", "package", "sequence", "schema", "audit", "unified", "create", "alter", "drop",
    "truncate", "ok", "pdf", "csv", "excel", "json", "api", "tns", "utc", "cet", "cest", "am", "pm", "moi", "nous",
    "jour", "jours", "semaine", "an", "ans", "annee", "nuit", "matin", "soir", "tous", "toutes", "tout", "les",
    "des", "eux", "lui", "elle", "ils", "elles", "qui", "quoi", "ceux", "celles", "exemple", "defaut", "rapport",
    "personne", "chacun", "rien", "celui", "celle", "cela", "ceci", "vous", "chaque", "quelqu", "quelqu'un",
    *COLUMNS,
}  # fmt: skip

ENTITY_KEYS = {
    "dbusername": "users", "os_username": "os_users", "userhost": "hosts", "terminal": "terminals",
    "client_program_name": "programs", "action_name": "actions", "object_schema": "schemas",
    "object_name": "objects", "session_id": "sessions", "return_code": "return_codes",
    "sql_text_contains": "sql_text", "authentication_type": "authentication",
    "unified_audit_policies": "policies", "system_privilege_used": "privileges",
}  # fmt: skip
LIST_FIELDS = [f for f in AuditFilters.model_fields if f not in ("failed", "start", "end", "exclude")]
EXCLUDABLE = set(DIMENSIONS)

# Negation: "sauf SCOTT", "hors comptes applicatifs", "sans les SELECT", "à part HR_APP", "pas les DELETE".
_NEGATION = re.compile(
    r"(?<![\w'-])(?:sauf|hors|sans|a part|mis a part|excepte\w*|hormis|a l'exclusion d[eu]s?|a l'exception d[eu]s?"
    r"|en excluant|exclu(?:ant|s|e|es|re)?|autres? que|non compris|en dehors d[eu]s?|en dehors de l'|pas (?:les?|la|l'|des|du|de|d'))"
    r"(?![\w-])"
)
# What may stand between a negation and the values it excludes, or between two of them.
_NEG_FILLER = re.compile(
    r"\s*(?:,|\bet\b|\bni\b|\bou\b|\bcelles?\b|\bceux\b|\bcelui\b|\bdans\b|\bsur\b|\bpar\b|\bpour\b|\bvia\b|\bdepuis\b|\bles?\b|\bla\b|l'|\bdes\b|\bdu\b|\bde\b|d'|\baux?\b|\btous\b|\btoutes\b"
    r"|\b(?:comptes?|utilisateurs?|users?|schemas?|tables?|objets?|machines?|hotes?|postes?|serveurs?|programmes?"
    r"|outils?|actions?|operations?|requetes?|commandes?|sessions?|terminaux|terminal)\b)"
)
_NOUN_BEFORE = re.compile(
    r"(?:\b(?:par|pour|avec|via|sur|des|les|de|d')\s*)*\b(?:comptes?|utilisateurs?|users?|schemas?|tables?|objets?"
    r"|machines?|hotes?|postes?|serveurs?|programmes?|outils?|logiciels?|applications?|actions?|operations?|termina(?:l|ux))\s+$"
)
_NOT_FAILED = re.compile(r"(?<![\w-])sans (?:(?:aucune?|les?|d')\s*)?(?:erreurs?|echecs?|echou\w*)\b")


class _Text:
    """The folded question with spans blanked out as they are understood."""

    def __init__(self, question: str) -> None:
        self.original = question
        self.folded = fold(question)
        self.masked = self.folded
        self.found: dict[str, list] | None = None  # set once the time is read: values are then located
        self.spans: list[tuple[int, int, str, Any]] = []  # (start, end, field, value) of each value found
        self._seen: set[tuple[str, Any]] = set()

    def mask(self, start: int, end: int, entity: bool = False) -> None:
        # An entity leaves "Q" (upper case never occurs in folded text) so cues can see it was there.
        fill = ("Q" if entity else " ").ljust(end - start)
        self.masked = self.masked[:start] + fill + self.masked[end:]
        if self.found is not None:  # the values added since the last span were read from this one
            for f, values in self.found.items():
                if not f.startswith("_"):
                    for v in values:
                        if (f, v) not in self._seen:
                            self._seen.add((f, v))
                            self.spans.append((start, end, f, v))

    def orig(self, start: int, end: int) -> str:
        return self.original[start:end]


def _add(filters: dict[str, list], f: str, value: Any) -> None:
    values = filters.setdefault(f, [])
    if value not in values:
        values.append(value)


def _strip_quotes(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _column_filters(t: _Text, gaz: Gazetteer, found: dict[str, list], extra: dict[str, Any]) -> None:
    for m in list(COLUMN_FILTER.finditer(t.masked)):
        f = COLUMNS[m["col"]]
        if f == "event_timestamp":
            continue
        raw = t.orig(m.start("val"), m.end("val"))
        items = (
            [_strip_quotes(v) for v in _VALUE_ITEM.findall(raw)]
            if raw.startswith("(")
            else [_strip_quotes(raw)]
        )
        op = " ".join(m["op"].split())
        negated = op in ("!=", "<>", "not in", "not like")
        target: dict[str, list] = extra.setdefault("exclude", {}) if negated else found
        for item in items:
            if not item:
                continue
            if f == "sql_text_contains" or (op.endswith("like") and "%" in item):
                if not negated:  # no exclusion on SQL text
                    _add(found, "sql_text_contains", item.strip("%"))
                continue
            if f in INT_FIELDS:
                if item.lstrip("-").isdigit():
                    _add(target, f, int(item))
                continue
            if f == "action_name":
                item = " ".join(item.upper().split())
            stored = gaz.canonical(f, item)
            if stored is None:
                extra.setdefault("not_found", []).append(item)
                stored = item.upper() if f in ("dbusername", "object_schema", "object_name", "action_name",
                                               "authentication_type") else item  # fmt: skip
            _add(target, f, stored)
        t.mask(m.start(), m.end(), True)


def _actions_present(gaz: Gazetteer, verb: str) -> list[str]:
    return sorted(
        a for a in gaz.values.get("action_name", []) if a.startswith(verb + " ") and a != "ALTER USER"
    )


def _actions(t: _Text, gaz: Gazetteer, found: dict[str, list]) -> None:
    for m in list(DDL_LITERAL.finditer(t.masked)):
        _add(found, "action_name", f"{m[1]} {m[2]}".upper())
        t.mask(m.start(), m.end())
    for m in list(DDL_GENERIC.finditer(t.masked)):
        for verb in ("CREATE", "ALTER", "DROP", "TRUNCATE"):
            for a in _actions_present(gaz, verb):
                _add(found, "action_name", a)
        t.mask(m.start(), m.end())
    for m in list(DDL_ENUM.finditer(t.masked)):  # "tables créées, modifiées ou supprimées"
        kind = OBJECT_KINDS.get(m["kind"])
        for word in re.findall(r"\w+", m["verbs"]):
            verb = next((v for v, rx in DDL_VERB_RX.items() if rx.fullmatch(word)), None)
            if verb:
                for a in [f"{verb} {kind}"] if kind else _actions_present(gaz, verb) or [f"{verb} TABLE"]:
                    _add(found, "action_name", a)
        t.mask(m.start(), m.end())
    for verb, pattern in DDL_PATTERNS:
        for m in list(pattern.finditer(t.masked)):
            kind = OBJECT_KINDS.get(m["kind"])
            if kind:
                _add(found, "action_name", f"{verb} {kind}")
            elif verb == "ALTER" and re.search(r"modifi|chang", m.group()):
                # "objets modifiés" in everyday French: any change of structure, not only ALTER
                for v in ("CREATE", "ALTER", "DROP", "TRUNCATE"):
                    for a in _actions_present(gaz, v):
                        _add(found, "action_name", a)
            else:
                for a in _actions_present(gaz, verb) or [f"{verb} TABLE"]:
                    _add(found, "action_name", a)
            t.mask(m.start(), m.end())
    for m in list(re.finditer(r"\b(drop|truncate|create)s?\b", t.masked)):
        for a in _actions_present(gaz, m[1].upper()) or [f"{m[1].upper()} TABLE"]:
            _add(found, "action_name", a)
        t.mask(m.start(), m.end())
    for pattern, acts in ACTION_WORDS:
        for m in list(pattern.finditer(t.masked)):
            for a in acts:
                _add(found, "action_name", a)
            t.mask(m.start(), m.end())


def _pick_field(hit: dict[str, list[str]], before: str, exact_caps: bool) -> str | None:
    for f, cue in CONTEXT_CUES.items():
        if f in hit and cue.search(before):
            return f
    for f in FIELD_PRIORITY:
        if f in hit:
            return f
    return None


def _gazetteer_entities(t: _Text, gaz: Gazetteer, found: dict[str, list], extra: dict[str, Any]) -> None:
    tokens = list(_TOKEN.finditer(t.masked))
    letters = [c for c in t.original if c.isalpha()]
    shouting = len(letters) > 12 and sum(c.isupper() for c in letters) > 0.6 * len(letters)
    i = 0
    while i < len(tokens):
        matched = False
        for n in range(min(gaz.max_words, len(tokens) - i), 0, -1):
            start, end = tokens[i].start(), tokens[i + n - 1].end()
            key = " ".join(tok.group() for tok in tokens[i : i + n])
            if n > 1 and t.masked[start:end] != key:
                continue
            hit = gaz.lookup(key)
            fuzzy = False
            if (
                hit is None
                and n == 1
                and not key.isdigit()
                and not any(p.search(key) for p, _ in ACTION_WORDS)
            ):
                fz = gaz.fuzzy(key)
                if fz:
                    hit, fuzzy = fz[1], True
            if hit is None:
                continue
            before = t.masked[max(0, start - 40) : start]
            caps = t.orig(start, end).isupper()
            cued = any(CONTEXT_CUES[f].search(before) for f in hit if f in CONTEXT_CUES) or (
                "os_username" in hit and "dbusername" not in hit and CONTEXT_CUES["dbusername"].search(before)
            )
            if key in AMBIGUOUS_VALUES and not caps and not cued:
                continue
            if (
                len(key) <= 2
                and not caps
                and not any(CONTEXT_CUES[f].search(before) for f in hit if f in CONTEXT_CUES)
            ):
                continue
            f = _pick_field(hit, before, caps)
            if f is None:
                continue
            if f == "client_program_name":
                for v in hit[f]:
                    _add(found, f, v)
            else:
                _add(found, f, hit[f][0])
            if fuzzy:
                extra.setdefault("corrected", []).append(f"{t.orig(start, end)} → {hit[f][0]}")
            t.mask(start, end, True)
            i += n
            matched = True
            break
        if not matched:
            tok = tokens[i]
            before = t.masked[max(0, tok.start() - 30) : tok.start()]
            word = t.orig(tok.start(), tok.end())
            after = t.masked[tok.end() : tok.end() + 30]
            if _unknown_user(word, before, after, shouting):
                _add(found, "dbusername", word.upper())
                extra.setdefault("not_found", []).append(word)
                t.mask(tok.start(), tok.end(), True)
            i += 1


def _unknown_user(word: str, before: str, after: str, shouting: bool) -> bool:
    """A name absent from the trail but clearly meant as a database user ("qu'a fait XYZABC ?",
    "l'utilisateur XYZ", "connexions de XYZ", "XYZ a-t-il ..."): kept as a filter (0 results) and
    listed in not_found, never dropped. It must be written in capitals (or hold a digit or "_"), unless
    the words before leave no doubt ("qu'a fait xyzabc")."""
    key = fold(word)
    if len(word) < 2 or word.isdigit() or not re.fullmatch(r"[\w$#]+", word):
        return False
    if key in NOT_NAMES or key in AMBIGUOUS_VALUES or key in COMMON_WORDS or key in MONTHS or key in WEEKDAYS:
        return False
    if any(p.search(key) for p, _ in ACTION_WORDS) or re.match(r"[-.@/']\w", after):
        return False
    named = (word.isupper() and len(word) >= 3 and not shouting) or bool(re.search(r"[_$#\d]", word))
    if _USER_SLOT_STRONG.search(before):  # "qu'a fait xyzabc ?": a lower-case word alone at the end
        return named or (len(word) >= 4 and not re.match(r"\s*[\w']", after))
    return named and bool(
        _USER_NAMED.search(before) or _USER_SLOT.search(before) or _USER_SLOT_AFTER.match(after)
    )


def _special_entities(t: _Text, gaz: Gazetteer, found: dict[str, list]) -> None:
    for rx, f, group in ((_SESSION, "session_id", "id"), (_ORA, "return_code", "code")):
        for m in list(rx.finditer(t.masked)):
            value = m[group] or (m["code2"] or m["code3"] if f == "return_code" else None)
            if value:
                value = re.sub(r"\D", "", value)
                _add(found, f, int(value))
                end = m.end()
                while f == "return_code" and (more := _ORA_MORE.match(t.masked, end)):  # "942 ou 1031"
                    _add(found, f, int(more["code"]))
                    end = more.end()
                t.mask(m.start(), end, True)
    for m in list(_QUOTED.finditer(t.masked)):
        _add(found, "sql_text_contains", t.orig(m.start("q"), m.end("q"))[1:-1])
        t.mask(m.start(), m.end())
    for rx, code in _ORA_PHRASES:
        for m in list(rx.finditer(t.masked)):
            _add(found, "return_code", code)
            t.mask(m.start(), m.end(), True)
    for value in gaz.values.get("system_privilege_used", []):
        key = fold(value)
        if " " in key and key not in ("alter user",) and key in t.masked:
            i = t.masked.index(key)
            _add(found, "system_privilege_used", value)
            t.mask(i, i + len(key), True)
    for m in list(_CONTAINS.finditer(t.masked)):
        word = t.orig(m.start("w"), m.end("w")).strip("%.")
        if word and fold(word) not in ("le", "la", "les", "des", "du", "un", "une"):
            _add(found, "sql_text_contains", word)
            t.mask(m.start("w"), m.end("w"))
    schemas = {v.lower(): v for v in gaz.values.get("object_schema", [])}
    for m in list(_SCHEMA_OBJ.finditer(t.masked)):
        if m["s"] in schemas:
            _add(found, "object_schema", schemas[m["s"]])
            obj = gaz.canonical("object_name", m["o"]) or t.orig(m.start("o"), m.end("o")).upper()
            _add(found, "object_name", obj)
            t.mask(m.start(), m.end(), True)


def _group_by(text: str) -> str | None:
    for pattern, g in _GROUP_BY:
        if pattern.search(text):
            return g
    return None


def _top_n(text: str) -> int | None:
    for pattern in _TOP_N:
        m = pattern.search(text)
        if m:
            n = m["n"]
            return int(n) if n.isdigit() else NUMBERS.get(n)
    if _TOP_ONE.search(text):
        return 1
    return None


def _score(text: str) -> dict[Intent, float]:
    scores: dict[Intent, float] = {}
    for intent, cues in INTENT_CUES.items():
        s = sum(w for w, rx in cues if rx.search(text))
        if s:
            scores[intent] = s
    return scores


def _lemmas(text: str) -> str:
    nlp = load()
    return " ".join(fold(tok.lemma_) for tok in nlp(text))


def _classify(
    t: _Text, text: str, found: dict[str, list], group: str | None, count: bool
) -> tuple[Intent, float, float]:
    """(intent, score of its cues, confidence) for the question text with entities blanked out."""
    scores = _score(text)
    if not scores and len(text.split()) >= 3 and is_loaded():
        scores = _score(_lemmas(text))  # a second chance on lemmas ("supprimerait", "échouèrent"...)
    has_entities = any(found.get(f) for f in LIST_FIELDS) or bool(
        found.get("_time") or found.get("_excluded")
    )
    if Intent.SMALL_TALK in scores and (max(scores.values()) > 3 or has_entities):
        scores.pop(Intent.SMALL_TALK)
    users = bool(found.get("dbusername"))
    if not users:
        scores.pop(Intent.USER_ACTIVITY, None)
    elif not set(scores) - {
        Intent.SEARCH_EVENTS,
        Intent.COUNT_EVENTS,
        Intent.LIST_USERS,
        Intent.USER_ACTIVITY,
    }:
        # A user named in the question turns a generic cue into "what did they do", unless the events
        # themselves are asked for ("montre les événements de TPETIT").
        if Intent.USER_ACTIVITY not in scores and _EVENT_LIST.search(text):
            scores[Intent.SEARCH_EVENTS] = max(scores.get(Intent.SEARCH_EVENTS, 0), 3.2)
        else:
            scores[Intent.USER_ACTIVITY] = max(scores.get(Intent.USER_ACTIVITY, 0), 3.1)
    acts = set(found.get("action_name", []))
    codes = set(found.get("return_code", []))
    if any(
        a.split()[0] in ("CREATE", "ALTER", "DROP", "TRUNCATE") and a not in ACCOUNT_ACTIONS for a in acts
    ):
        scores[Intent.OBJECT_CHANGES] = max(scores.get(Intent.OBJECT_CHANGES, 0), 4.5)
    if found.get("system_privilege_used"):  # a privilege named by its name: the question is about it
        scores[Intent.PRIVILEGES] = max(scores.get(Intent.PRIVILEGES, 0), 6)
    elif acts & ({"GRANT", "REVOKE"} | ACCOUNT_ACTIONS):
        scores[Intent.PRIVILEGES] = max(scores.get(Intent.PRIVILEGES, 0), 4)
    if codes - {0, 1017}:
        scores[Intent.ERRORS] = max(scores.get(Intent.ERRORS, 0), 3)
    if 1017 in codes or ("LOGON" in acts and found.get("_failed")):
        scores[Intent.FAILED_LOGINS] = max(scores.get(Intent.FAILED_LOGINS, 0), 5)
    if found.get("session_id"):
        scores[Intent.SESSIONS] = max(scores.get(Intent.SESSIONS, 0), 3)
    if found.get("sql_text_contains"):
        scores[Intent.SEARCH_EVENTS] = scores.get(Intent.SEARCH_EVENTS, 0) + 2
    if found.get("object_schema") and Intent.SCHEMA_OBJECTS in scores and not found.get("object_name"):
        scores[Intent.SCHEMA_OBJECTS] += 1.5
    if group and group in GROUP_INTENT:
        target = GROUP_INTENT[group]
        generic = {Intent.SEARCH_EVENTS, Intent.COUNT_EVENTS, Intent.USER_ACTIVITY, Intent.LIST_USERS}
        if not set(scores) - generic:
            scores[target] = max(scores.get(target, 0), 3.6)
    if not scores:
        if has_entities:
            return (Intent.COUNT_EVENTS if count else Intent.SEARCH_EVENTS), 0.0, 0.55
        return Intent.UNKNOWN, 0.0, 0.2
    if count and Intent.SEARCH_EVENTS in scores:
        scores.pop(Intent.SEARCH_EVENTS)
        scores.setdefault(Intent.COUNT_EVENTS, 1.5)
    best = max(scores.items(), key=lambda kv: (kv[1], -PRIORITY.index(kv[0])))
    if count and best[0] == Intent.USER_ACTIVITY:  # "combien de SELECT a fait SCOTT" is a count
        best = (Intent.COUNT_EVENTS, best[1])
    others = sorted((s for i, s in scores.items() if i != best[0]), reverse=True)
    margin = best[1] - (others[0] if others else 0)
    confidence = min(0.98, 0.55 + 0.08 * best[1] + 0.05 * margin)
    return best[0], best[1], round(confidence, 2)


def analyze_sync(
    question: str, *, gaz: Gazetteer, previous: Analysis | None = None, now: datetime, tz: ZoneInfo
) -> Analysis:
    """The CPU part of `analyze` (run it in a thread)."""
    t = _Text(question)
    found: dict[str, list] = {}
    extra: dict[str, Any] = {}
    tm = parse_time(t.folded, now=now, tz=tz, folded=True)
    time_range = None
    if tm is not None:
        if tm.invalid:  # "le 31 février": never read as another day
            extra["time_invalid"] = [t.orig(*tm.span).strip()]
        if tm.all_time:  # "sur toute la période": no range, and a follow-up drops the previous one
            extra["all_time"] = [t.orig(*tm.span).strip()]
        if tm.start is not None or tm.end is not None:
            time_range = TimeRange(start=tm.start, end=tm.end, text=t.orig(*tm.span).strip())
        t.mask(*tm.span)
        found["_time"] = [True]
    t.found = found
    _column_filters(t, gaz, found, extra)
    _special_entities(t, gaz, found)
    _account_classes(t, gaz, found)
    _gazetteer_entities(t, gaz, found, extra)
    # Intent cues are read before action words are blanked ("qui s'est connecté" keeps "connecte").
    text = _CLIENT_WORD_BEFORE_ENTITY.sub(lambda m: _client_word(t, m), t.masked)
    _actions(t, gaz, found)
    exclude, negated = _negations(t, found, extra.pop("exclude", {}))
    if exclude:
        found["_excluded"] = [True]
    for a, b in negated:  # "sauf les programmes X" does not ask about programs
        text = text[:a] + " " * (b - a) + text[b:]
    not_failed = _NOT_FAILED.search(text)
    if not_failed:  # "connexions sans erreur"
        text = (
            text[: not_failed.start()]
            + " " * (not_failed.end() - not_failed.start())
            + text[not_failed.end() :]
        )
    failed = bool(
        INTENT_CUES[Intent.ERRORS][0][1].search(text) or INTENT_CUES[Intent.FAILED_LOGINS][2][1].search(text)
    )
    failed_value: bool | None = True if failed else None
    if not failed and (not_failed or re.search(r"\b(?:reussie?s?|abouti\w*|succes)\b", text)):
        failed_value = False
    if failed:
        found["_failed"] = [True]
    group = _group_by(text)
    count = bool(_COUNT.search(text)) and group is None
    intent, score, confidence = _classify(t, text, found, group, count)
    unknown_noun = _unknown_counted(t) if count else None
    if unknown_noun:  # "combien de patates hier": not all events; say what was understood
        intent, score, confidence, count = Intent.UNKNOWN, 0.0, 0.3, False
        extra["unknown_terms"] = [unknown_noun]
    if intent == Intent.FAILED_LOGINS:
        found["action_name"] = ["LOGON"]
        failed_value = True
    elif intent == Intent.PRIVILEGES:
        if not found.get("action_name") and not found.get("system_privilege_used"):
            if re.search(r"accord|donn|attribu|octroi|recu|obtenu", text):
                found["action_name"] = ["GRANT"]
            elif re.search(r"retir|revoqu|revocation|enlev", text):
                found["action_name"] = ["REVOKE"]
            else:
                found["action_name"] = ["GRANT", "REVOKE", "ALTER USER"]
        _grantees(t, found)
    elif intent == Intent.OBJECT_CHANGES and not found.get("action_name"):
        for verb in ("CREATE", "ALTER", "DROP", "TRUNCATE"):
            for a in _actions_present(gaz, verb):
                _add(found, "action_name", a)
    elif intent == Intent.ERRORS and failed_value is None:
        failed_value = True
    if intent == Intent.ERRORS and group is None and _ERROR_KINDS.search(text):
        group = "return_code"
    if intent in (Intent.HELP, Intent.SMALL_TALK):
        found, failed_value, time_range = {}, None, None
    top_n = _top_n(text) if intent not in (Intent.HELP, Intent.SMALL_TALK) else None
    latest = _LATEST.search(text) if not count else None
    noun = (latest["noun"] or latest["noun2"]) if latest else ""
    if intent == Intent.SESSIONS and latest and latest["n"] and noun.startswith("session"):
        top_n = int(latest["n"]) if latest["n"].isdigit() else NUMBERS.get(latest["n"])
    if intent in _LATEST_INTENTS and (noun in EVENT_NOUNS or noun.rstrip("s") in EVENT_NOUNS):
        # "les 5 dernières connexions de SYSTEM": those events, newest first
        intent, group = Intent.SEARCH_EVENTS, None
        n = latest["n"]
        one = latest["one"] or (latest["noun2"] and not noun.endswith("s"))
        top_n = (int(n) if n.isdigit() else NUMBERS.get(n)) if n else (1 if one else top_n)
        extra["sort"] = ["-event_timestamp"]
    if intent == Intent.SESSIONS:
        sort = next((key for rx, key in _SESSION_SORTS if rx.search(text)), None)
        if sort:
            extra["sort"] = [sort]
            if sort == "-failed":  # ranked by their failures, not restricted to them
                failed_value = None
    if group is None:
        group = DEFAULT_GROUP.get(intent)
        if intent == Intent.CLIENTS:
            group = _clients_group(text)
        elif intent == Intent.TIME_DISTRIBUTION:
            group = _time_group(text)
    filters = AuditFilters(
        **{f: v for f, v in found.items() if not f.startswith("_")},
        exclude=exclude,
        failed=failed_value,
        start=time_range.start if time_range else None,
        end=time_range.end if time_range else None,
    )
    analysis = Analysis(
        question=question,
        normalized=" ".join(t.folded.split()),
        intent=intent,
        confidence=confidence,
        filters=filters,
        time_range=time_range,
        group_by=group,
        top_n=top_n,
        count_only=count and intent not in (Intent.HELP, Intent.SMALL_TALK, Intent.UNKNOWN),
    )
    if (
        previous is not None
        and intent not in (Intent.HELP, Intent.SMALL_TALK)
        and not unknown_noun
        and _is_follow_up(t, text, found)
    ):
        analysis = _merge(previous, analysis, score, text)
        if (extra.get("time_invalid") or extra.get("all_time")) and time_range is None:
            # "et le 31 février ?", "et sur toute la période ?": not the previous period
            analysis.time_range, analysis.filters.start, analysis.filters.end = None, None, None
    _logon_accounts(analysis.filters, gaz)
    analysis.entities = _entities(analysis, extra)
    return analysis


def _client_word(t: _Text, m: re.Match) -> str:
    """'depuis la machine WS-01' names the host, not the question's topic: blank the word out, unless the
    value after it is of another kind ('depuis quelles machines MMARTIN ...' asks for machines)."""
    fields = {sp[2] for sp in t.spans if sp[0] == m.end()}
    if fields and not fields & {"userhost", "terminal", "client_program_name", "os_username"}:
        return m.group()
    return " " * len(m.group())


def _unknown_counted(t: _Text) -> str | None:
    """The noun after "combien de" when it names nothing an audit trail holds ("patates"); None when it
    is an audit notion, a value or an action (already blanked out), or a close misspelling of one."""
    m = _COUNTED.search(t.masked)
    if not m:
        return None
    word = m["w"]
    if word in AUDIT_NOUNS or word.rstrip("s") in AUDIT_NOUNS or _score(word).keys() - _WEAK_INTENTS:
        return None
    if process.extractOne(word, AUDIT_NOUNS, scorer=fuzz.ratio, score_cutoff=80):
        return None
    return t.orig(m.start("w"), m.end("w"))


def _account_classes(t: _Text, gaz: Gazetteer, found: dict[str, list]) -> None:
    """'les comptes applicatifs': the database users of that class present in the trail."""
    for rx, parts in ACCOUNT_CLASSES:
        for m in list(rx.finditer(t.masked)):
            users = accounts_of_class(gaz.values.get("dbusername", []), parts)
            if users:
                for u in users:
                    _add(found, "dbusername", u)
                t.mask(m.start(), m.end(), True)


def _negations(
    t: _Text, found: dict[str, list], exclude: dict[str, list]
) -> tuple[dict[str, list], list[tuple[int, int]]]:
    """Move the values named right after a negation ("sauf SCOTT et HR_APP", "sans les SELECT") from
    the filters to the exclusions; `exclude` already holds the column-style ones (`DBUSERNAME != 'X'`).
    Also returns the negated spans, whose words must not decide the intent."""
    scopes: list[tuple[int, int]] = []
    if t.spans:
        for neg in _NEGATION.finditer(t.folded):
            pos, excluded = neg.end(), False
            while pos < len(t.folded):
                at = [
                    sp
                    for sp in t.spans
                    if sp[0] <= pos < sp[1] or (sp[0] >= pos and not t.folded[pos : sp[0]].strip())
                ]
                if at:
                    start = min(sp[0] for sp in at)
                    hits = [sp for sp in t.spans if sp[0] == start]
                    qualified = {"object_schema", "object_name"} <= {sp[2] for sp in hits}
                    for _, _, f, v in hits:
                        if f in EXCLUDABLE and v in found.get(f, []):
                            found[f].remove(v)
                            excluded = True
                            if not (
                                qualified and f == "object_schema"
                            ):  # "sauf SALES.ORDERS": that object only
                                _add(exclude, f, v)
                    pos = max(sp[1] for sp in hits)
                    continue
                filler = _NEG_FILLER.match(t.folded, pos)
                if not filler or filler.end() == pos:
                    break
                pos = filler.end()
            if excluded:
                start = neg.start()
                if neg.group().startswith("autre"):  # "des programmes autres que X": the noun is negated too
                    before = _NOUN_BEFORE.search(t.folded, 0, start)
                    start = before.start() if before else start
                scopes.append((start, pos))
    for f in [f for f, v in found.items() if not v and not f.startswith("_")]:
        del found[f]
    return {f: v for f, v in exclude.items() if v}, scopes


def _logon_accounts(filters: AuditFilters, gaz: Gazetteer) -> None:
    """'échecs de connexion sur SYSTEM': logon events have no object, so a schema named with them is
    the account (when a user of that name exists)."""
    if not filters.action_name or not set(filters.action_name) <= {"LOGON", "LOGOFF"} or filters.object_name:
        return
    users = gaz.values.get("dbusername", [])
    for v in [v for v in filters.object_schema if v in users]:
        filters.object_schema.remove(v)
        if v not in filters.dbusername:
            filters.dbusername.append(v)


def _grantees(t: _Text, found: dict[str, list]) -> None:
    """'accordé à PLEGRAND': the grantee is in the SQL text, not the acting user; 'le mot de passe de
    JDUPONT': the altered user is the object of ALTER USER."""
    users = found.get("dbusername", [])
    for user in list(users):
        i = t.folded.find(user.lower())
        before = t.folded[max(0, i - 25) : i]
        if i > 0 and _GRANTEE.search(before):
            users.remove(user)
            _add(found, "sql_text_contains", user)
        elif (
            i > 0
            and "ALTER USER" in found.get("action_name", [])
            and re.search(r"passe (?:de |du |d')$", before)
        ):
            users.remove(user)
            _add(found, "object_name", user)
    if not users:
        found.pop("dbusername", None)


def _clients_group(text: str) -> str:
    if re.search(r"utilisateurs? (?:os|systeme)|comptes? (?:os|systeme)|\bos users?\b|os_username", text):
        return "os_username"
    if re.search(r"\bterminau\w*|\bterminal\b", text):
        return "terminal"
    if re.search(
        r"machines?|hotes?|hosts?|postes?|\bd'ou\b|adresses?|\bip\b|provenance|ordinateurs?|\bpc\b|serveurs?",
        text,
    ):
        return "userhost"
    return "client_program_name"


def _time_group(text: str) -> str:
    if re.search(r"jours? de (?:la )?semaine|quel jour de la semaine|lundi ou|weekday", text):
        return "weekday"
    if re.search(r"\bsemaines?\b|hebdomadaire", text):
        return "week"
    if re.search(r"\bjours?\b|quotidien|journali|tendance|evolution|par date|chronologie|courbe", text):
        return "day"
    return "hour"


def _is_follow_up(t: _Text, text: str, found: dict[str, list]) -> bool:
    if _FOLLOW.search(text):
        return True
    own = any(found.get(f) for f in ("dbusername", "object_schema", "object_name", "action_name", "userhost"))
    return len(t.folded.split()) <= 6 and not own


ACCOUNT_ACTIONS = {"ALTER USER", "CREATE USER", "DROP USER"}
# Intents whose action filter is the topic itself, not a choice of the user.
TOPIC_ACTIONS = {Intent.OBJECT_CHANGES, Intent.PRIVILEGES, Intent.FAILED_LOGINS}


def _merge(previous: Analysis, new: Analysis, score: float, text: str) -> Analysis:
    merged = previous.model_copy(deep=True)
    merged.question = new.question
    merged.normalized = new.normalized
    merged.follow_up = True
    only_group = bool(_group_by(text)) and len(text.split()) <= 4  # "par machine" keeps the question
    keep = {
        Intent.UNKNOWN,
        Intent.SEARCH_EVENTS,
        Intent.COUNT_EVENTS,
        Intent.USER_ACTIVITY,
        Intent.LIST_USERS,
    }
    # A topic of its own switches the question ("a-t-il eu des erreurs ?" after object changes: the
    # errors of the same user and period); errors count although their cue alone weighs 2.5.
    if new.intent not in keep and score >= 2.5 and not only_group:
        if new.intent != previous.intent:
            # what the previous topic implied goes with it: its actions (DDL, GRANT/REVOKE, LOGON), its failures
            if previous.intent in TOPIC_ACTIONS or new.intent == Intent.FAILED_LOGINS:
                merged.filters.action_name = []
            if previous.intent in (Intent.ERRORS, Intent.FAILED_LOGINS):
                merged.filters.failed = None
        merged.intent = new.intent
        merged.group_by = new.group_by
        merged.top_n = new.top_n
    merged.confidence = round(min(previous.confidence or 0.7, 0.9) if score < 3 else new.confidence, 2)
    add = bool(re.search(r"\b(?:aussi|egalement|en plus|ainsi que)\b", text))
    if previous.intent == Intent.OBJECT_CHANGES and set(new.filters.action_name) <= {"DELETE"}:
        new.filters.action_name = []  # "qui les a supprimées ?" refers to the objects dropped
    for f in LIST_FIELDS:
        values = getattr(new.filters, f)
        if values:
            if add:
                setattr(merged.filters, f, list(dict.fromkeys([*getattr(merged.filters, f), *values])))
            else:
                setattr(merged.filters, f, list(values))
    for f, values in new.filters.exclude.items():  # "sauf SCOTT": drop it from the previous filters too
        kept = [v for v in getattr(merged.filters, f) if v not in values]
        setattr(merged.filters, f, kept)
        merged.filters.exclude[f] = list(dict.fromkeys([*merged.filters.exclude.get(f, []), *values]))
    for f in list(merged.filters.exclude):  # a value asked for again is no longer excluded
        merged.filters.exclude[f] = [v for v in merged.filters.exclude[f] if v not in getattr(new.filters, f)]
        if not merged.filters.exclude[f]:
            del merged.filters.exclude[f]
    if new.filters.failed is not None:
        merged.filters.failed = new.filters.failed
    if new.time_range is not None:
        merged.time_range = new.time_range
        merged.filters.start, merged.filters.end = new.time_range.start, new.time_range.end
    if new.group_by and _group_by(text):
        merged.group_by = new.group_by
    if new.top_n is not None:
        merged.top_n = new.top_n
    if new.count_only:
        merged.count_only = True
    if (
        merged.filters.action_name == ["LOGON"]
        and merged.filters.failed
        and merged.intent
        in (
            Intent.COUNT_EVENTS,
            Intent.SEARCH_EVENTS,
            Intent.ERRORS,
        )
    ):
        merged.intent = Intent.FAILED_LOGINS
    return merged


def _entities(a: Analysis, extra: dict[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for f, key in ENTITY_KEYS.items():
        values = getattr(a.filters, f)
        if values:
            out[key] = list(values)
    for f, values in a.filters.exclude.items():
        out["excluded_" + ENTITY_KEYS.get(f, f)] = list(values)
    if a.filters.failed is not None:
        out["failed"] = [a.filters.failed]
    if a.time_range and a.time_range.text:
        out["time"] = [a.time_range.text]
    if extra.get("all_time") and a.time_range is None:
        out["time"] = list(extra["all_time"])
    for key in ("not_found", "corrected", "time_invalid", "unknown_terms", "sort"):
        if extra.get(key):
            out[key] = list(dict.fromkeys(extra[key]))
    return out


async def analyze(
    question: str, *, store, previous: Analysis | None = None, now: datetime | None = None
) -> Analysis:
    """What a French question about the audit trail asks: intent, filters, time range, grouping."""
    tz = settings.tz
    now = (now or datetime.now(tz)).astimezone(tz)
    gaz = await gazetteer(store)
    return await asyncio.to_thread(analyze_sync, question, gaz=gaz, previous=previous, now=now, tz=tz)
