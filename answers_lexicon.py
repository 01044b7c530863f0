"""The words of the French writer (answers.py), as data: what each column, measure and action is
called, and the unit a count counts ("1 connexion échouée", "39 suppressions de table")."""

from dataclasses import dataclass
from typing import Any

import french as fr

# Field → (one, many, feminine).
FIELD_NOUNS: dict[str, tuple[str, str, bool]] = {
    "dbusername": ("utilisateur", "utilisateurs", False),
    "os_username": ("utilisateur système", "utilisateurs système", False),
    "userhost": ("machine", "machines", True),
    "terminal": ("terminal", "terminaux", False),
    "client_program_name": ("programme", "programmes", False),
    "action_name": ("action", "actions", True),
    "object_schema": ("schéma", "schémas", False),
    "object_name": ("objet", "objets", False),
    "return_code": ("code retour", "codes retour", False),
    "session_id": ("session", "sessions", True),
    "authentication_type": ("type d'authentification", "types d'authentification", False),
    "unified_audit_policies": ("politique d'audit", "politiques d'audit", True),
    "system_privilege_used": ("privilège système", "privilèges système", False),
    "instance_id": ("instance", "instances", True),
    "sql_text": ("requête SQL", "requêtes SQL", True),
    "hour": ("heure", "heures", True),
    "weekday": ("jour de la semaine", "jours de la semaine", False),
    "day": ("jour", "jours", False),
    "week": ("semaine", "semaines", True),
    "month": ("mois", "mois", False),
}

# How an included field reads after the counted noun: (one value, several values); values follow.
INCLUDE_PHRASES: dict[str, tuple[str, str]] = {
    "os_username": ("de l'utilisateur système", "des utilisateurs système"),
    "userhost": ("depuis la machine", "depuis les machines"),
    "terminal": ("depuis le terminal", "depuis les terminaux"),
    "client_program_name": ("avec le programme", "avec les programmes"),
    "session_id": ("dans la session", "dans les sessions"),
    "authentication_type": ("avec l'authentification", "avec les authentifications"),
    "unified_audit_policies": ("relevant de la politique d'audit", "relevant des politiques d'audit"),
    "system_privilege_used": ("avec le privilège système", "avec les privilèges système"),
    "instance_id": ("sur l'instance", "sur les instances"),
}

MEASURE_LABELS: dict[str, str] = {
    "events": "nombre d'événements",
    "distinct": "nombre de valeurs différentes",
    "sessions": "nombre de sessions",
    "duration": "durée des sessions",
    "first": "premier événement",
    "last": "dernier événement",
    "share": "part",
    "coverage": "période couverte par les données",
    "anomalies": "activités suspectes",
}
# The result column holding each measure's value (duration: the average).
VALUE_COLUMNS: dict[str, str] = {
    "events": "count",
    "distinct": "distinct",
    "sessions": "sessions",
    "duration": "avg_s",
    "first": "first",
    "last": "last",
    "share": "percent",
    "coverage": "count",
    "anomalies": "count",
}
THRESHOLD_WORDS = {"gt": "plus de", "gte": "au moins", "lt": "moins de", "lte": "au plus"}
SAME_PHRASES = {
    ("object_schema", "object_name"): "sur le même objet",
    ("object_name",): "sur le même objet",
    ("dbusername",): "du même utilisateur",
    ("session_id",): "dans la même session",
    ("userhost",): "depuis la même machine",
}


# ---------------------------------------------------------------------------- what is counted


@dataclass(frozen=True)
class Unit:
    """What a count counts: '1 connexion échouée', '39 connexions échouées', 'aucun DELETE'."""

    one: str
    many: str
    feminine: bool = False
    done: bool = False  # something a user does: "SCOTT n'a fait aucun DELETE"
    says_actions: bool = False  # the action filter is said by the unit
    says_category: bool = False  # the (single) category is said by the unit
    says_failed: bool = False
    says_codes: bool = False

    def of(self, n: Any) -> str:
        return fr.count_noun(n, self.one, self.many, feminine=self.feminine)

    def none(self) -> str:
        return ("aucune " if self.feminine else "aucun ") + self.one


EVENT = Unit("événement", "événements")
SESSION = Unit("session", "sessions", True)

ACTION_UNITS: dict[str, Unit] = {
    "LOGON": Unit("connexion", "connexions", True),
    "LOGOFF": Unit("déconnexion", "déconnexions", True),
    "GRANT": Unit("attribution de droits (GRANT)", "attributions de droits (GRANT)", True, True),
    "REVOKE": Unit("retrait de droits (REVOKE)", "retraits de droits (REVOKE)", False, True),
    "TRUNCATE TABLE": Unit("vidage de table (TRUNCATE)", "vidages de table (TRUNCATE)", False, True),
}
DDL_VERBS = {"CREATE": ("création", "créations"), "ALTER": ("modification", "modifications"),
             "DROP": ("suppression", "suppressions")}  # fmt: skip
DDL_KINDS = {"TABLE": "table", "INDEX": "index", "VIEW": "vue", "PROCEDURE": "procédure",
             "FUNCTION": "fonction", "PACKAGE": "package", "TRIGGER": "déclencheur", "SEQUENCE": "séquence",
             "SYNONYM": "synonyme", "USER": "compte", "ROLE": "rôle", "TABLESPACE": "tablespace"}  # fmt: skip

# Categories that read as a countable noun; the others are said "de la catégorie « label »".
DML_ACTIONS = "(INSERT, UPDATE, DELETE, MERGE)"
DDL_ACTIONS = "(CREATE, ALTER, DROP, TRUNCATE, RENAME)"
CATEGORY_UNITS: dict[str, Unit] = {
    "dml": Unit(f"opération DML {DML_ACTIONS}", f"opérations DML {DML_ACTIONS}", True, True),
    "ddl": Unit(f"opération DDL {DDL_ACTIONS}", f"opérations DDL {DDL_ACTIONS}", True, True),
    "destructive": Unit(
        "suppression (DROP, TRUNCATE, DELETE)", "suppressions (DROP, TRUNCATE, DELETE)", True, True
    ),
    "change": Unit("modification (DML et DDL)", "modifications (DML et DDL)", True, True),
    "read": Unit("lecture (SELECT)", "lectures (SELECT)", True, True),
    "write": Unit(f"écriture {DML_ACTIONS}", f"écritures {DML_ACTIONS}", True, True),
    "logon": Unit("connexion", "connexions", True),
    "logoff": Unit("déconnexion", "déconnexions", True),
    "grant": Unit(
        "attribution ou retrait de droits (GRANT, REVOKE)",
        "attributions et retraits de droits (GRANT, REVOKE)",
        True,
        True,
    ),
    "account": Unit(
        "changement de compte (CREATE, ALTER, DROP USER)",
        "changements de comptes (CREATE, ALTER, DROP USER)",
        False,
        True,
    ),
    "role": Unit("opération sur les rôles", "opérations sur les rôles", True, True),
    "set_role": Unit("activation de rôle (SET ROLE)", "activations de rôle (SET ROLE)", True, True),
    "table": Unit("opération sur une table", "opérations sur des tables", True, True),
    "temporary": Unit(
        "opération sur une table temporaire (TMP_, TEMP)",
        "opérations sur des tables temporaires (TMP_, TEMP)",
        True,
        True,
    ),
    "view": Unit("opération sur une vue", "opérations sur des vues", True, True),
    "procedure": Unit(
        "opération sur une procédure ou un package", "opérations sur des procédures et packages", True, True
    ),
    "index": Unit("opération sur un index", "opérations sur des index", True, True),
    "dictionary": Unit(
        "accès au dictionnaire (SYS, SYSTEM, DBA_, V$)",
        "accès au dictionnaire (SYS, SYSTEM, DBA_, V$)",
        False,
        True,
    ),
    "no_where": Unit("UPDATE ou DELETE sans WHERE", "UPDATE et DELETE sans WHERE", False, True),
    "system_privilege": Unit("usage d'un privilège système", "usages d'un privilège système", False, True),
}
