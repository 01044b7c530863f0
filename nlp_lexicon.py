# ruff: noqa: E501 (regular-expression tables read better unwrapped)
"""Vocabulary of audit questions: French/English verbs → Oracle actions, column names, and the
gazetteer of values present in the audit trail (built in MongoDB, cached per audit version)."""

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

import rollups
from models import DIMENSIONS
from time_parser import fold

# Fields whose distinct values the gazetteer holds: the text-valued dimensions.
GAZETTEER_FIELDS: tuple[str, ...] = tuple(f for f in DIMENSIONS if f not in ("return_code", "session_id"))
# Fields matched in free text (the others only through column-style filters or words).
FREE_TEXT_FIELDS = ("dbusername", "os_username", "userhost", "terminal", "client_program_name",
                    "object_schema", "object_name", "unified_audit_policies")  # fmt: skip
# A value found in several fields goes to the first one here unless the words before it say otherwise.
FIELD_PRIORITY = ("dbusername", "object_schema", "userhost", "client_program_name", "object_name",
                  "os_username", "terminal", "unified_audit_policies")  # fmt: skip

# Column names DBAs type, folded → AuditFilters field.
COLUMNS = {
    "dbusername": "dbusername", "db_username": "dbusername", "db_user": "dbusername", "username": "dbusername",
    "user_name": "dbusername", "os_username": "os_username", "osuser": "os_username", "os_user": "os_username",
    "userhost": "userhost", "user_host": "userhost", "host": "userhost", "machine": "userhost",
    "terminal": "terminal", "client_program_name": "client_program_name", "program": "client_program_name",
    "action_name": "action_name", "action": "action_name", "object_schema": "object_schema",
    "owner": "object_schema", "object_name": "object_name", "obj_name": "object_name",
    "sessionid": "session_id", "session_id": "session_id", "return_code": "return_code",
    "returncode": "return_code", "authentication_type": "authentication_type",
    "unified_audit_policies": "unified_audit_policies", "system_privilege_used": "system_privilege_used",
    "sql_text": "sql_text_contains", "event_timestamp": "event_timestamp",
}  # fmt: skip
INT_FIELDS = {"session_id", "return_code"}
_COL_NAMES = "|".join(sorted(COLUMNS, key=len, reverse=True))
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[\w.@$#/:-]+)"
COLUMN_FILTER = re.compile(
    r"\b(?P<col>" + _COL_NAMES + r")\s*(?P<op>==|=|!=|<>|\bnot\s+like\b|\bnot\s+in\b|\blike\b|\bin\b|:)\s*"
    r"(?P<val>\(\s*" + _VALUE + r"(?:\s*,\s*" + _VALUE + r")*\s*\)|" + _VALUE + ")",
)
_VALUE_ITEM = re.compile(_VALUE)

# Words that are values in the demo trail but mostly ordinary words in a question: matched only
# when written in capitals or named with their column/field word.
AMBIGUOUS = {"oracle", "unknown", "help", "dba", "os", "password", "system", "jobs", "select", "grant",
             "revoke", "delete", "update", "insert", "logon", "logoff", "execute", "guest"}  # fmt: skip

# French words never fuzzily matched to a value ("systeme" ~ SYSTEM, "petit" ~ TPETIT, ...).
COMMON_WORDS = set(
    [
        "utilisateur",
        "utilisateurs",
        "systeme",
        "systemes",
        "schema",
        "schemas",
        "tables",
        "table",
        "objet",
        "objets",
        "actions",
        "action",
        "activite",
        "activites",
        "connexion",
        "connexions",
        "session",
        "sessions",
        "erreur",
        "erreurs",
        "requete",
        "requetes",
        "machine",
        "machines",
        "programme",
        "programmes",
        "combien",
        "quels",
        "quelles",
        "quelle",
        "quel",
        "depuis",
        "pendant",
        "derniers",
        "dernieres",
        "semaine",
        "hier",
        "aujourd",
        "matin",
        "soir",
        "montre",
        "affiche",
        "donne",
        "liste",
        "lister",
        "compte",
        "comptes",
        "nombre",
        "petit",
        "petite",
        "martin",
        "bernard",
        "moreau",
        "girard",
        "legrand",
        "dupont",
        "dubois",
        "monitor",
        "report",
        "rapport",
        "order",
        "ordres",
        "client",
        "clients",
        "serveur",
        "serveurs",
        "privilege",
        "privileges",
        "droits",
        "roles",
        "grant",
        "revoke",
        "suppression",
        "suppressions",
        "insertions",
        "insertion",
        "lectures",
        "lecture",
        "modification",
        "modifications",
        "ajout",
        "ajouts",
        "derniere",
        "dernier",
        "mois",
        "heures",
        "heure",
        "jours",
        "annee",
        "echecs",
        "echec",
        "echouees",
        "echoue",
        "echouee",
        "tentatives",
        "tentative",
        "supprime",
        "supprimes",
        "supprimees",
        "supprimee",
        "cree",
        "creees",
        "crees",
        "modifie",
        "modifiees",
        "modifies",
        "cette",
        "entre",
        "apres",
        "avant",
        "autre",
        "autres",
        "toutes",
        "touts",
        "quoi",
        "fait",
        "faire",
        "faites",
        "terminaux",
        "terminal",
        "poste",
        "postes",
        "outils",
        "outil",
        "compte",
        "histoire",
        "historique",
        "donnees",
        "ligne",
        "lignes",
        "enregistrements",
        "evenements",
        "evenement",
        "resume",
        "synthese",
        "plus",
        "moins",
        "seulement",
        "uniquement",
        "maintenant",
        "encore",
        "aussi",
        "meme",
        "pareil",
        "idem",
        "bonjour",
        "merci",
        "salut",
        "sales",
        "finance",
        "payments",
        "accounts",
        "budgets",
        "ledger",
        "customers",
        "products",
        "invoices",
        "employees",
        "salaries",
        "departments",
        "locations",
        "scott",
        "sale",
        "vous",
        "nous",
        "elle",
        "tous",
        "plus",
        "moins",
    ]
)


CONTEXT_CUES: dict[str, re.Pattern] = {
    "os_username": re.compile(r"(?:utilisateurs?|users?|comptes?)\s+(?:os|systeme|windows|unix|linux)\s*$|"
                              r"(?:os[ _]?user(?:name)?|osuser)\s*$"),
    "object_schema": re.compile(r"(?:schemas?|owner|proprietaire|dans|sur|base)\s+(?:l[ea]\s+|d[eu]\s+)?$"
                                r"|(?:objets?|tables?|vues?)\s+(?:de|du|d')\s*$"),
    "object_name": re.compile(r"(?:table|objet|vue|index|role|procedure|package)\s+(?:l[ea]\s+|d[eu]\s+)?$"
),
    "terminal": re.compile(r"termina(?:l|ux)\s+$"),
    "userhost": re.compile(r"(?:machines?|hotes?|hosts?|postes?|serveurs?|ordinateurs?|pc)\s+(?:l[ea]\s+|d[eu]\s+)?$"),
    "client_program_name": re.compile(r"(?:programmes?|outils?|logiciels?|applications?|clients?)\s+$"),
    "dbusername": re.compile(r"(?:utilisateurs?|users?|comptes?|dbusername|l'utilisateur)\s+(?:db\s+|oracle\s+)?$"),
}  # fmt: skip

# Words naming an action, folded. Each entry: pattern → action values (stored names).
# The DDL ones are resolved against the data ("DROP" → every DROP ... action present).
_ACCOUNT = r"\b(?:comptes?|utilisateurs?|users?)\s+(?:[\w'-]+\s+){0,2}?(?:(?:ont|a|avaient|avait|auraient|aurait)\s+ete|sont|est|ete|etaient|etait)?\s*"
ACTION_WORDS: list[tuple[re.Pattern, tuple[str, ...]]] = [
    (re.compile(p), acts)
    for p, acts in [
        # Accounts changed, created or dropped ("quels comptes ont été modifiés ?"), before the verbs alone
        # ("supprimés" alone is DELETE). "les utilisateurs qui ont modifié ..." (active) is not this.
        (
            _ACCOUNT
            + r"(?:modifie|change|altere|reconfigure|verrouille|deverrouille|bloque|debloque)(?:e|s|es)?\b",
            ("ALTER USER",),
        ),
        (
            _ACCOUNT
            + r"(?:cree|creee|crees|creees|ajoute|ajoutee|ajoutes|ajoutees)\b|\bcreations? de (?:comptes?|utilisateurs?)\b"
            r"|\b(?:cree\w*|ajout\w*) (?:des |les |un |une |de nouveaux |de nouvelles |d'autres |de )(?:comptes?|utilisateurs?)\b",
            ("CREATE USER",),
        ),
        (
            _ACCOUNT
            + r"(?:supprime|supprimee|supprimes|supprimees|droppe|droppes)\b|\bsuppressions? de (?:comptes?|utilisateurs?)\b"
            r"|\b(?:supprim\w*|dropp\w*|efface\w*) (?:des |les |un |une |ces |le |l')(?:comptes?|utilisateurs?)\b",
            ("DROP USER",),
        ),
        (
            r"\blogon\b|\blogins?\b|\bconnexions?\b|\bconnect(?:e|ee|es|ees|s|ent|er|ait|aient|ant|ons|ez)\b|\bse connecter\b|\bauthentifications?\b"
            r"|\bconnections?\b|\bconexions?\b|\bconnexion\b|\bconnextions?\b|\bouvertures? de session",
            ("LOGON",),
        ),
        (r"\blogoff\b|\bdeconnexions?\b|\bdeconnecte(?:e|es|s)?\b|\bfermetures? de session", ("LOGOFF",)),
        (
            r"\bdelete\b|\bdeletes\b|\bsuppressions?\b|\bsupprim\w*|\beffac\w*|\bdelet\w*|\bsupres\w*|\bsupress\w*",
            ("DELETE",),
        ),
        (r"\binsert\b|\binserts\b|\binsertions?\b|\binsere\w*|\bajouts? de (?:lignes|donnees)", ("INSERT",)),
        (
            r"\bupdates?\b|\bmises? a jour\b|\bmis a jour\b|\bmodifications? de (?:donnees|lignes)"
            r"|\b(?:lignes|donnees|enregistrements) modifie\w*|\bmodifie (?:des|les) (?:lignes|donnees)",
            ("UPDATE",),
        ),
        (r"\bselect\b|\bselects\b|\blectures?\b|\blu(?:es?|s)?\b|\bacces en lecture", ("SELECT",)),
        (
            r"\bexecute\b|\bexecutions? de (?:procedures?|packages?)|\bappels? de procedure|\bprocedures? executee?s?",
            ("EXECUTE",),
        ),
        (
            r"\bgrants?\b|\boctroi\w*|\baccord\w* (?:de |des |le |un |les )?(?:droits?|privileges?|roles?)"
            r"|\battribu\w* (?:de |des |le |un |les )?(?:droits?|privileges?|roles?)"
            r"|\bdonn\w* (?:de |des |le |un |les |du )?(?:droits?|privileges?|roles?)",
            ("GRANT",),
        ),
        (
            r"\brevokes?\b|\brevocations?\b|\brevoqu\w*|\bretir\w* (?:de |des |les )?(?:droits?|privileges?|roles?)",
            ("REVOKE",),
        ),
        (
            r"\balter user\b|\bmots? de passe (?:modifi|chang|reinit|chg)\w*|\b(?:modifi|chang|reinit)\w* "
            r"(?:de |des |du |le |les )?mots? de passe|\bmodifications? de comptes?|\bmodifi\w* (?:des |les |de |le )?comptes?",
            ("ALTER USER",),
        ),
    ]
]
# DDL: verb (FR/EN) + object kind. The kind decides the Oracle object type.
DDL_VERBS = {
    "DROP": r"drop|dropp\w*|supprim\w*|suppressions?|effac\w*|detrui\w*|destructions?",
    "CREATE": r"create|cre(?:e|ee|es|ees|er|ation|ations|é)|nouvel\w*",
    "ALTER": r"alter|modifi\w*|changements?|chang\w*",
    "TRUNCATE": r"truncate|tronqu\w*|vid(?:e|ee|ees|es|er|age)",
}
OBJECT_KINDS = {"table": "TABLE", "tables": "TABLE", "index": "INDEX", "vue": "VIEW", "vues": "VIEW",
                "objet": None, "objets": None, "structure": None, "structures": None}  # fmt: skip
_KIND = r"(?P<kind>tables?|index|vues?|objets?|structures?)"
DDL_PATTERNS = [
    (verb, re.compile(r"\b(?:" + pat + r")\s+(?:(?:d[eu]s?|l[ae]s?|une?|ces|cette|plusieurs|\d+)\s+|d'|l')?" + _KIND + r"\b"))
    for verb, pat in DDL_VERBS.items()
] + [
    (verb, re.compile(r"\b" + _KIND + r"\s+(?:(?!plus\b)[\w'-]+\s+){0,3}?(?:" + pat + r")\b"))
    for verb, pat in DDL_VERBS.items()
]  # fmt: skip
DDL_LITERAL = re.compile(
    r"\b(create|alter|drop|truncate)\s+(table|index|view|user|role|procedure|package|sequence)\b"
)
DDL_GENERIC = re.compile(
    r"\b(?:ddl|changements? de (?:structure|schema)|modifications? de (?:structure|schema)|operations? ddl)"
    r"(?:\s+(?:execute|lance|passe)\w*)?"
)
DDL_ENUM = re.compile(
    r"\b(?P<kind>tables?|index|vues?|objets?)\s+(?P<verbs>(?:(?:cre|modifi|supprim|drop|alter|tronqu|vid)\w*"
    r"(?:\s*,\s*|\s+ou\s+|\s+et\s+|\s*/\s*)?){2,})"
)


# Classes of accounts named in questions ("hors comptes applicatifs"), resolved against the database
# users present, by the parts of their names (HR_APP, BI_REPORT, ETL_BATCH; MONITOR for technical ones).
_APP_PARTS = {"APP", "APPS", "APPLI", "API", "SVC", "SRV", "SERVICE", "BATCH", "ETL", "REPORT", "REPORTING",
              "BI", "JOB", "JOBS", "WS", "WEB"}  # fmt: skip
_TECH_PARTS = _APP_PARTS | {"MONITOR", "MONITORING", "DBSNMP", "OEM", "AGENT"}
ACCOUNT_CLASSES: list[tuple[re.Pattern, frozenset[str]]] = [
    (re.compile(r"\b(?:comptes?|utilisateurs?|users?)\s+(?:applicatifs?|d'applications?|des applications?|applis?"
                r"|d'applis?)\b|\bapplicatifs\b"), frozenset(_APP_PARTS)),
    (re.compile(r"\b(?:comptes?|utilisateurs?|users?)\s+(?:de service|techniques?|non nominatifs?|systemes? et applicatifs?"
                r"|de services|automatiques?|batch)\b"), frozenset(_TECH_PARTS)),
]  # fmt: skip


def accounts_of_class(users: list[str], parts: frozenset[str]) -> list[str]:
    return sorted(u for u in users if set(re.split(r"[_$#.]", u.upper())) & parts)


def fold_key(value: str) -> str:
    return re.sub(r"\s+", " ", fold(value).strip())


@dataclass
class Gazetteer:
    """Distinct stored values per field, with folded keys for exact, alias and fuzzy matching."""

    values: dict[str, list[Any]]
    version: int = 0
    keys: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # folded → field → values
    fuzzy_keys: list[str] = field(default_factory=list)
    user_keys: list[str] = field(default_factory=list)
    max_words: int = 1

    @classmethod
    def from_values(cls, values: dict[str, list[Any]], version: int = 0) -> "Gazetteer":
        g = cls({f: [v for v in values.get(f, []) if v not in (None, "")] for f in GAZETTEER_FIELDS}, version)
        for f in FREE_TEXT_FIELDS:
            for v in g.values[f]:
                g._add(fold_key(str(v)), f, str(v))
        for v in g.values["client_program_name"]:
            key = fold_key(v)
            for alias in {re.split(r"[@ (]", key)[0], key.removesuffix(".exe"), key.split(".")[0],
                          re.sub(r"\d+(\.\d+)*$", "", key.split(" ")[0]), key.replace(" ", "")}:  # fmt: skip
                if len(alias) >= 3 and alias not in ("sql", "client", "thin"):
                    g._add(alias, "client_program_name", v)
        for v in g.values["dbusername"]:  # ADM_MOREAU ← "moreau"
            key = fold_key(v)
            if "_" in key and len(key.split("_", 1)[1]) >= 5:
                g._add(key.split("_", 1)[1], "dbusername", v, alias=True)
        g.max_words = max((len(k.split()) for k in g.keys), default=1)
        g.fuzzy_keys = [k for k in g.keys if len(k) >= 5 and k not in AMBIGUOUS]
        g.user_keys = [k for k, by in g.keys.items() if "dbusername" in by and len(k) == 5]
        return g

    def _add(self, key: str, f: str, value: str, alias: bool = False) -> None:
        by_field = self.keys.setdefault(key, {})
        vals = by_field.setdefault(f, [])
        if value not in vals:
            vals.append(value)

    def canonical(self, f: str, typed: str) -> str | None:
        """The stored spelling of a value typed in a column filter, if present."""
        key = fold_key(typed)
        for v in self.values.get(f, []):
            if fold_key(str(v)) == key:
                return v
        return None

    def lookup(self, key: str) -> dict[str, list[str]] | None:
        return self.keys.get(key)

    def fuzzy(self, key: str) -> tuple[str, dict[str, list[str]]] | None:
        if len(key) < 4 or key in COMMON_WORDS or not self.fuzzy_keys:
            return None
        if len(key) == 4:  # "scot": only database users, closely
            best = process.extractOne(key, self.user_keys, scorer=fuzz.ratio, score_cutoff=88)
            return (best[0], self.keys[best[0]]) if best else None
        best = process.extractOne(
            key, self.fuzzy_keys, scorer=fuzz.ratio, score_cutoff=80 if len(key) >= 6 else 84
        )
        if best is None or abs(len(best[0]) - len(key)) > 2:
            return None
        return best[0], self.keys[best[0]]


async def distinct_values(store) -> dict[str, list[Any]]:
    """Distinct values of the gazetteer fields, computed by the store (`distinct`, measured faster than
    one `$group` per field or a single `$group` with `$addToSet` on SecantusDB: 3.9 s against 6.5 s for
    the 20,000-event demo trail)."""

    async def one(f: str) -> tuple[str, list[Any]]:
        # Other writers share the store: a value that is not text is no name a question can use.
        return f, [v for v in await store.audit.distinct(f) if isinstance(v, str) and v]

    return dict(await asyncio.gather(*(one(f) for f in GAZETTEER_FIELDS)))


_cache: dict[tuple[str, str], Gazetteer] = {}
_lock = asyncio.Lock()


def loaded(store) -> Gazetteer | None:
    """The gazetteer built last for this store, if any (for /api/health; never builds one)."""
    return _cache.get((store.db_name, store.audit_name))


async def gazetteer(store) -> Gazetteer:
    """The gazetteer of the store's audit trail, rebuilt when `store.audit_version()` changes."""
    version = await store.audit_version()
    key = (store.db_name, store.audit_name)
    cached = _cache.get(key)
    if cached is not None and cached.version == version:
        return cached
    async with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.version == version:
            return cached
        # From the rollups (a few thousand small documents); full scans only if they cannot be trusted.
        values = await rollups.known_values(store, GAZETTEER_FIELDS) or await distinct_values(store)
        built = await asyncio.to_thread(Gazetteer.from_values, values, version)
        _cache[key] = built
        return built


def gazetteer_from_events(events: list[dict]) -> Gazetteer:
    """The same gazetteer from documents in memory (bench and offline tools)."""
    values: dict[str, set] = {f: set() for f in GAZETTEER_FIELDS}
    for e in events:
        for f in GAZETTEER_FIELDS:
            if isinstance(e.get(f), str) and e[f]:
                values[f].add(e[f])
    return Gazetteer.from_values({f: sorted(v) for f, v in values.items()})
