"""Answers that state no figure: help, small talk, questions outside the audit trail, and questions
not wholly understood (which name the words not understood and never answer the partial reading)."""

import re
from collections.abc import Callable

from answers import period_phrase, understood
from plan import CATEGORIES, Plan
from understand_lexicon import CONNECTED_NOW

EXAMPLES: list[str] = [
    "Quels sont les utilisateurs les plus actifs cette semaine ?",
    "Combien de connexions échouées hier ?",
    "Qui s'est connecté en dehors des heures de bureau cette semaine ?",
    "Quelles tables ont été supprimées ce mois-ci ?",
    "Quelles sont les actions les plus fréquentes aujourd'hui ?",
    "Quels objets ont été modifiés les 7 derniers jours ?",
    "Y a-t-il des activités suspectes cette semaine ?",
    "Quelles sont les heures de pointe cette semaine ?",
    "Quels programmes clients sont utilisés ?",
    "Quelles erreurs ont eu lieu hier ?",
    "Combien de sessions hier ?",
    "Quels utilisateurs ont accédé au schéma FINANCE ?",
]

RECORDED = (
    "La piste d'audit enregistre qui a fait quoi, quand, d'où et avec quel résultat : connexions, "
    "requêtes, modifications de données et de structure, droits accordés, erreurs."
)

# Topic (understand_lexicon.OUT_OF_SCOPE) → two questions the trail can answer instead.
NEARBY: dict[str, list[str]] = {
    "la taille des objets et l'espace disque": [
        "Quelles sont les tables les plus consultées ?",
        "Quelles tables ont été créées ou supprimées ce mois-ci ?",
    ],
    "les performances": [
        "Quelles sont les heures de pointe cette semaine ?",
        "Quels utilisateurs ont été les plus actifs hier ?",
    ],
    "l'usage du processeur": [
        "Quelles sont les heures de pointe cette semaine ?",
        "Quels utilisateurs ont été les plus actifs hier ?",
    ],
    "les entrées-sorties du serveur": [
        "Quelles sont les heures de pointe cette semaine ?",
        "Quels programmes clients sont utilisés ?",
    ],
    CONNECTED_NOW: [
        "Combien de sessions sont encore ouvertes ?",
        "Qui s'est connecté aujourd'hui ?",
    ],
    "la mémoire": [
        "Quelles sont les heures de pointe cette semaine ?",
        "Combien de sessions hier ?",
    ],
    "les sauvegardes et journaux de reprise": [
        "Qui s'est connecté en dehors des heures de bureau cette semaine ?",
        "Quels programmes clients sont utilisés ?",
    ],
    "la configuration de la base": [
        "Quels privilèges système ont été utilisés ce mois-ci ?",
        "Quelles opérations DDL ont eu lieu cette semaine ?",
    ],
    "les valeurs métier contenues dans les tables": [
        "Qui a consulté la table HR.SALARIES ce mois-ci ?",
        "Quelles tables ont été modifiées hier ?",
    ],
}
DEFAULT_NEARBY = [
    "Quels sont les utilisateurs les plus actifs cette semaine ?",
    "Combien de connexions échouées hier ?",
]


def help_answer() -> str:
    examples = "\n".join(f"- {q}" for q in EXAMPLES[:6])
    return (
        "Je réponds en français aux questions sur la piste d'audit Oracle : qui a fait quoi, quand, d'où, "
        "avec quel résultat ; comptes, parts, classements, répartitions, comparaisons de périodes, sessions, "
        "premières et dernières occurrences, activités suspectes. Quand je ne comprends pas un mot, "
        "je le dis plutôt que de répondre à une autre question. Par exemple :\n" + examples
    )


def small_talk_answer() -> str:
    return (
        "Bonjour ! Je suis l'assistant d'audit : posez-moi une question sur la piste d'audit Oracle, "
        "par exemple « Combien de connexions échouées hier ? »."
    )


def out_of_scope_answer(topic: str) -> tuple[str, list[str]]:
    """One sentence saying the trail does not record it, what it records, two questions that help."""
    nearby = NEARBY.get(topic, DEFAULT_NEARBY)
    text = (
        f"La piste d'audit ne contient pas d'information sur {topic} : "
        f"je ne peux donc pas donner de chiffre. {RECORDED} "
        f"Ces questions peuvent vous aider : « {nearby[0]} » ou « {nearby[1]} »"
    )
    return text, nearby


def _action_test(name: str) -> Callable[[str], bool] | None:
    """Whether an action name belongs to a category, for the categories defined on the action alone."""
    match = CATEGORIES[name].match
    if set(match) != {"action_name"}:
        return None
    cond = match["action_name"]
    if "$in" in cond:
        return lambda a: a in cond["$in"]
    return lambda a: re.search(cond["$regex"], a) is not None


def _contradictory(plan: Plan) -> bool:
    """A reading that no event could match: a value both kept and left out, or named actions that
    the reading's own categories rule out."""
    f = plan.filters
    if set(f.categories) & set(f.exclude_categories) or any(
        set(values) & set(f.exclude.get(field, [])) for field, values in f.include.items()
    ):
        return True
    actions = [a for a in f.include.get("action_name", []) if isinstance(a, str)]
    left_out = {a for a in f.exclude.get("action_name", []) if isinstance(a, str)}
    for name in f.categories:
        test = _action_test(name)
        if test is None:
            continue
        if actions and not any(test(a) for a in actions):
            return True
        values = CATEGORIES[name].match["action_name"].get("$in")
        if values and set(values) <= left_out:
            return True
    for name in f.exclude_categories:
        test = _action_test(name)
        if test is not None and actions and all(test(a) for a in actions):
            return True
    return False


def shown_partial(partial: Plan | None) -> Plan | None:
    """The partial reading worth showing: one that restricts something, holds no comparison (a
    second period read from half a sentence is most often wrong) and is not self-contradictory."""
    if partial is None or partial.compare is not None or _contradictory(partial):
        return None
    if partial.filters.is_empty() and not partial.period:
        return None
    return partial


def not_understood_answer(
    unknown: list[str], partial: Plan | None, notes: list[str], suggestions: list[str]
) -> str:
    """Names the words not understood; the partial reading is offered, never answered."""
    words = ", ".join(f"« {w} »" for w in dict.fromkeys(unknown)) or "votre question"
    text = f"Je n'ai pas compris {words}"
    text += " dans votre question." if unknown else "."
    if (partial := shown_partial(partial)) is not None:
        text += (
            f" J'ai seulement compris : {understood(partial)}. Je ne donne pas ce chiffre, "
            "car il ne répondrait pas à toute la question."
        )
    for note in notes:
        if note:
            text += f" ({note})"
    asks = " ; ".join(f"« {q} »" for q in suggestions)
    return text + f" Reformulez-la, ou essayez : {asks}."


def partial_question(partial: Plan | None) -> str | None:
    """A question that the reader understands wholly, close to the partial reading."""
    if (partial := shown_partial(partial)) is None:
        return None
    period = f" {partial.period.label}" if partial.period and partial.period.label else ""
    if not partial.period and not partial.filters.include and not partial.filters.categories:
        return None
    users = partial.filters.include.get("dbusername")
    if users:
        return f"Qu'a fait {users[0]}{period} ?"
    if partial.filters.categories == ["logon"]:
        failed = " échouées" if partial.filters.failed else ""
        return f"Combien de connexions{failed}{period} ?"
    schemas = partial.filters.include.get("object_schema")
    if schemas:
        return f"Quels utilisateurs ont accédé au schéma {schemas[0]}{period} ?"
    actions = partial.filters.include.get("action_name")
    if actions:
        return f"Qui a fait des {actions[0]}{period} ?"
    return f"Combien d'événements{period or period_phrase(None)} ?"
