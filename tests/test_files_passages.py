"""keyword_passages: the passages of a document that match a French question, without an LLM."""

from files_service import fold, keyword_passages, split_passages

FILLER = (
    "Ce paragraphe décrit le contexte général de la mission, les interlocuteurs rencontrés et le "
    "calendrier retenu pour les entretiens avec les équipes d'exploitation. "
) * 3

DOCUMENT = "\n\n".join(
    [
        "Politique de sauvegarde",
        "Les sauvegardes complètes de la base sont réalisées chaque nuit à 2h et conservées 30 jours. "
        + FILLER,
        FILLER,
        "Sécurité des comptes",
        "Les comptes privilégiés (SYS, SYSTEM, DBA) sont revus chaque trimestre ; toute connexion "
        "échouée répétée déclenche une alerte. " + FILLER,
        FILLER,
    ]
)


def test_fold_removes_accents_and_case():
    assert fold("Sécurité ÉCHOUÉE cœur") == "securite echouee coeur"


def test_passages_are_paragraph_sized():
    passages = split_passages(DOCUMENT)
    assert len(passages) >= 4
    assert all(len(p) <= 900 for p in passages)
    assert split_passages("") == []


def test_question_words_find_the_matching_passage_accents_and_plurals_folded():
    best = keyword_passages(DOCUMENT, "Que dit le document sur la securite du compte ?", max_passages=1)
    assert len(best) == 1 and "comptes privilégiés" in best[0]

    best = keyword_passages(DOCUMENT, "Quand a lieu la sauvegarde ?", max_passages=2)
    assert "chaque nuit à 2h" in best[0]

    best = keyword_passages(DOCUMENT, "connexions échouées", max_passages=3)
    assert "connexion échouée" in best[0]


def test_stop_words_alone_give_the_opening_passages_and_unknown_words_nothing():
    opening = keyword_passages(DOCUMENT, "Que dit ce fichier ?", max_passages=2)
    assert opening == split_passages(DOCUMENT)[:2]
    assert keyword_passages(DOCUMENT, "xylophone quantique") == []
    assert keyword_passages("", "sauvegarde") == []


def test_long_unbroken_text_is_cut_into_passages():
    rows = "\n".join(f"2024-03-01;USER{i};SELECT;HR;EMPLOYEES" for i in range(500))
    rows += "\n2024-03-02;MALLORY;DROP TABLE;HR;SALAIRES"
    passages = split_passages(rows)
    assert len(passages) > 10
    assert "MALLORY" in keyword_passages(rows, "Qui a fait un DROP TABLE ?", max_passages=1)[0]
