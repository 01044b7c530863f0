# ruff: noqa: E501 (word tables read better unwrapped)
"""What French words mean in a question about the audit trail: data for understand.py.

Every pattern runs on accent-folded, lower-case text (time_parser.fold). Each table maps words to one
effect on the plan; understand.py applies them and marks the words as read. A content word that no
table names and that is not in FILLERS is reported as not understood.
"""

import re

# fmt: off

# --------------------------------------------------------------------------- fields

# Words that name a column: as a grouping ("par machine"), a distinct count ("combien de terminaux"),
# a ranking head ("quel utilisateur ... le plus") or before a value ("le schéma XYZ").
FIELD_WORDS: list[tuple[str, str]] = [
    (
        r"utilisateurs? (?:systemes?|os|unix|windows)|comptes? (?:os|systeme)|os[_ ]?users?(?:names?)?|os_username",
        "os_username",
    ),
    (
        r"dbusername|db_username|db[_ ]users?|usernames?|(?:utilisateurs?|comptes?) (?:de (?:la )?base|bdd|oracle|db)|utilisateurs?|users?|comptes?|personnes|gens|^\W*qui|(?<=par )qui|(?<=c'est )qui|^\W*c qui|(?<=et )qui|(?<=, )qui|(?<=de )qui|(?<=savoir )qui|(?<=connaitre )qui|(?<=dire )qui|(?<=-moi )qui|(?<=indiquer )qui",
        "dbusername",
    ),
    (
        r"userhost|user_host|hotes?|hosts?|machines?|serveurs?|postes?(?: de travail)?|ordinateurs?|pcs?|adresses?(?: ip)?|ip",
        "userhost",
    ),
    (r"terminaux|terminals?|terminal", "terminal"),
    (r"d'ou", "userhost"),
    (
        r"client_program_name|program(?:me)?_name|programmes?(?: clients?)?|programs?|applications? clientes?|applications?|outils?|logiciels?|clients? (?:sql|oracle)",
        "client_program_name",
    ),
    (
        r"action_name|types? d'actions?|types? d'operations?|actions?|operations?|commandes? sql|commandes?|ordres? sql|types? de requetes?",
        "action_name",
    ),
    (r"object_schema|schemas?|owners?|proprietaires?", "object_schema"),
    (r"object_name|objets?|tables?", "object_name"),
    (
        r"return_code|codes? (?:de )?retour|codes? d'erreurs?|codes? ora|codes? erreurs?|codes?|types? d'erreurs?",
        "return_code",
    ),
    (r"session_?id|sessionid|sessions?", "session_id"),
    (
        r"authentication_type|types? d'authentification|types? d'auth|modes? d'authentification|methodes? d'authentification|modes? de connexion",
        "authentication_type",
    ),
    (
        r"unified_audit_polic(?:y|ies)|politiques? d'audit|politiques?|polic(?:y|ies)|regles? d'audit",
        "unified_audit_policies",
    ),
    (
        r"system_privilege_used|system_privilege|privileges? systemes?|privileges? (?:systeme )?utilises?|privileges?",
        "system_privilege_used",
    ),
    (r"instance_id|instances?", "instance_id"),
    (
        r"sql_text|requetes? sql|textes? sql|instructions? sql|ordres? sql|requetes?(?= (?:les plus|la plus))|statements? sql|sql",
        "sql_text",
    ),
]
# Said alone, without "par": a time grouping all the same.
PEAK_WORDS = r"heures? de la journee|heures? de pointe|heures? (?:les plus )?chargees?|pics? d'activite|heures? d'affluence|heures? les plus actives"
BUCKET_WORDS: list[tuple[str, str]] = [
    (r"heures? de la journee", "hour"),
    (r"jours? de (?:la )?semaine|weekdays?", "weekday"),
    (r"heures?|tranches? horaires?|creneaux?(?: horaires?)?", "hour"),
    (r"jours?|journees?|dates?|days?", "day"),
    (r"semaines?|weeks?", "week"),
    (r"mois|months?", "month"),
]
# Which fields a bare value may belong to, first match wins unless context says otherwise.
VALUE_PRIORITY = ("dbusername", "object_schema", "object_name", "userhost", "client_program_name",
                  "os_username", "terminal", "unified_audit_policies", "action_name")  # fmt: skip
# Values that are also ordinary words: only read as values when typed in capitals or after their field word.
COMMON_VALUES = {"oracle", "unknown", "help", "dba", "os", "password", "system", "jobs", "guest", "hr", "sys",
                 "sales", "finance", "orders", "products", "accounts", "ledger", "payments", "budgets", "monitor",
                 "customers", "invoices", "locations", "employees", "departments", "salaries", "scott"}  # fmt: skip

# --------------------------------------------------------------------------- categories and actions

# (pattern, categories, exact actions, note said out loud). Longest and most specific first.
CATEGORY_WORDS: list[tuple[str, tuple[str, ...], tuple[str, ...], str]] = [
    # a verb and the kind of object it made or removed: "créé des tables" is CREATE TABLE, not every CREATE
    (
        r"tables? supprimees?|suppressions? de tables?|(?:ont |a )?supprime\w* (?:des |les |une |la |de |d')?tables?(?! temporaires?)",
        (),
        ("DROP TABLE",),
        "",
    ),
    (
        r"(?:(?:ont |a )?(?:re)?cree\w*|creations?) (?:des |les |une |la |un |le |de |d')?(?:nouvelles? )?tables?(?! temporaires?)|tables? (?:re)?(?:crees?|creees?)",
        (),
        ("CREATE TABLE",),
        "",
    ),
    (r"(?:(?:ont |a )?(?:re)?cree\w*|creations?) (?:des |les |un |le |d')?(?:nouveaux? )?index\b", (), ("CREATE INDEX",), ""),
    (r"(?:(?:ont |a )?(?:re)?cree\w*|creations?) (?:des |les |une |la |de |d')?(?:nouvelles? )?vues?\b", (), ("CREATE VIEW",), ""),
    (
        r"(?:update|delete|mises? a jour|suppressions?)s? sans (?:clause )?where|sans (?:clause )?where",
        ("no_where",),
        (),
        "",
    ),
    (r"(?<!quels )(?<!quel )privileges? systemes? (?:ont-ils |ont |a |a-t-il )?(?:ete |etaient |sont )?(?:exerce|utilise)\w*|(?:usage|utilisation|utilisations|exercice)s? (?:de |d'|des |du )?privileges? systemes?|(?:exerce|utilise|use)\w* (?:de |d'|des |du |un |une |le |les )?privileges? systemes?|(?:a |ont )?(?:fait )?usage de privileges? systemes?", ("system_privilege",), (), ""),
    (r"system_privilege_used (?:renseigne|non nul|non vide|present|rempli)e?s?", ("system_privilege",), (), ""),
    (r"set role|activations? de roles?|roles? actives?", ("set_role",), (), ""),
    (r"alter system", (), ("ALTER SYSTEM",), ""),
    (r"alter session", (), ("ALTER SESSION",), ""),
    (
        r"(?:create|alter|drop|truncate|rename) (?:table|index|view|user|role|procedure|package|function|trigger|sequence|synonym|tablespace|profile)",
        (),
        ("<literal>",),
        "",
    ),
    (r"\bdml\b", ("dml",), (), ""),
    (r"touche\w* aux droits|modifi\w* (?:les |des )?droits|gestion des droits|(?:accord|attribu|donn|retir|revoqu)\w* (?:des |les )?droits", ("grant",), (), ""),
    (r"\bddl\b", ("ddl",), (), ""),
    (
        r"operations? (?:destructrices?|dangereuses?)|actions? (?:destructrices?|dangereuses?)|destructi(?:ve|f|ves|fs|ons?)|purges?",
        ("destructive",),
        (),
        "",
    ),
    (r"tables? temporaires?|temporaires?|(?:(?:object_name|objets?|tables?|noms?) (?:qui )?(?:commen\w+|debut\w+) par |tables? )?\btmp(?:_[%*]?|[%*]|\b)", ("temporary",), (), ""),
    (
        r"vues? (?:systemes?|du dictionnaire)|tables? (?:systemes?|du dictionnaire)|objets? (?:systemes?|du dictionnaire)|dictionnaire(?: de donnees)?|catalogue",
        ("dictionary",),
        (),
        "",
    ),
    (r"(?:(?<=les )|(?<=des )|(?<=une )|(?<=aux )|(?<=la )|(?<=sur ))vues?|\bviews?\b", ("view",), (), ""),
    (
        r"appels? de procedures?(?: stockees?)?|procedures?(?: stockees?)?|packages?|fonctions? pl/?sql|pl/?sql",
        ("procedure",),
        (),
        "",
    ),
    (r"\bindex\b|\bindexes\b", ("index",), (), ""),
    (  # "des comptes ont-ils été créés, modifiés ou supprimés": every change of an account
        r"comptes? (?:utilisateurs? )?(?:(?:(?:ont|a)(?:-t)?(?:-ils|-il)? )?(?:ete|etaient|sont|furent) )?(?:(?:crees?|creees?)|(?:modifies?|modifiees?)|(?:supprimes?|supprimees?))(?:,? (?:ou |et )?(?:(?:crees?|creees?)|(?:modifies?|modifiees?)|(?:supprimes?|supprimees?)))+",
        ("account",),
        (),
        "",
    ),
    (
        r"creations? (?:de |des )?comptes?(?: utilisateurs?)?|(?:nouveaux |nouveau )?comptes? (?:utilisateurs? )?(?:(?:(?:ont|a)(?:-t)?(?:-ils|-il)? )?(?:ete|etaient|sont|furent) )?(?:(?:crees?|creees?)|ouverts?)|"
        r"(?:cree|creer|crees|(?:crees?|creees?)|creait|creent|ouvert) (?:des |un |de |les |le |d'|du )?(?:nouveaux? )?comptes?",
        (),
        ("CREATE USER",),
        "",
    ),
    (
        r"suppressions? (?:de |des )?comptes?(?: utilisateurs?)?|comptes? (?:utilisateurs? )?(?:(?:(?:ont|a)(?:-t)?(?:-ils|-il)? )?(?:ete|etaient|sont|furent) )?(?:supprimes?|supprimees?)|"
        r"supprim\w* (?:des |un |de |les |le |d'|du )?comptes?",
        (),
        ("DROP USER",),
        "",
    ),
    (
        r"(?:modif\w*|changements?|gestion) (?:de |des )?comptes?(?: utilisateurs?)?|changements? de (?:mots? de passe|comptes?)|comptes? (?:utilisateurs? )?(?:(?:(?:ont|a)(?:-t)?(?:-ils|-il)? )?(?:ete|etaient|sont|furent) )?(?:modifies?|modifiees?)|mots? de passe (?:change|modifie|reinitialise)s?",
        ("account",),
        (),
        "",
    ),
    (
        r"\bgrants?\b|accorde\w*|octroye\w*|attributions? de (?:droits?|privileges?)|droits? (?:accordes?|donnes?|attribues?)|privileges? (?:accordes?|donnes?|attribues?)|accord\w* des? (?:droits?|privileges?)|octroi\w*",
        (),
        ("GRANT",),
        "",
    ),
    (
        r"\brevokes?\b|retraits? de (?:droits?|privileges?)|droits? (?:retires?|revoques?)|privileges? (?:retires?|revoques?)|revoqu\w*",
        (),
        ("REVOKE",),
        "",
    ),
    (r"\broles?\b", ("role",), (), ""),
    (r"deconnexions?|deconnecte\w*|\blogoffs?\b|\blogouts?\b|log off", ("logoff",), (), ""),
    (
        r"tentatives? de connexions?|(?:a |ont |avoir )?tentee?s? de (?:se |s')connecter|connexions?|connections?|conexions?|\blogons?\b|\blogins?\b|(?<!d')authentifications?|(?:se |s'|me |m')?(?:sont |est |etre |a |ont )?connecte\w*|se connecter|s'est logge|ouvertures? de sessions?",
        ("logon",),
        (),
        "",
    ),
    (
        r"\bselects?\b|lectures?|consultations?|(?:ont |a |avoir )?(?:lu|lus|lue|lues|consulte\w*)\b|\blire\b|\blit\b|lisent|acces en lecture",
        (),
        ("SELECT",),
        "",
    ),
    (r"ecritures?|acces en ecriture|(?:a |ont )?ecrit\w*", ("write",), (), ""),
    (
        r"\binserts?\b|insertions?|insere\w*|ajouts? de lignes?|lignes? (?:ajoutees?|inserees?)",
        (),
        ("INSERT",),
        "",
    ),
    (
        r"\bupdates?\b|mises? a jour|\bmaj\b|lignes? (?:modifiees?|mises? a jour)|donnees? modifiees?",
        (),
        ("UPDATE",),
        "",
    ),
    (
        r"supprime\w* (?:des |les )?lignes?|\bdeletes?\b|lignes? supprimees?|suppressions? de lignes?|donnees? supprimees?|effacements? de lignes?",
        (),
        ("DELETE",),
        "",
    ),
    (r"\btruncates?\b|vidages?|(?:tables? )?videes?", (), ("TRUNCATE*",), ""),
    (
        r"\bdrops?\b|droppee?s?|droppe",
        (),
        ("DROP*",),
        "",
    ),
    (r"\bcreates?\b|\brecreates?\b|creations?|(?:ont |a )?(?:re)?cree\w*", (), ("CREATE*",), ""),
    (r"\balters?\b", (), ("ALTER*",), ""),
    (r"\bexecutes?\b|executions? de procedures?", (), ("EXECUTE",), ""),
    (r"\bmerges?\b", (), ("MERGE",), ""),
    (
        r"suppressions?|supprime\w*|effac\w*",
        ("destructive",),
        (),
        "« suppression » lu comme DROP, TRUNCATE et DELETE ; pour les seules lignes supprimées, demandez « DELETE »",
    ),
    (
        r"modifications?|modifie\w*|changements?|change\w*",
        ("change",),
        (),
        "« modifié » lu comme DML et DDL ; pour les seules modifications de structure, demandez « DDL »",
    ),
]

# --------------------------------------------------------------------------- outcome

FAILED_WORDS = (
    r"(?:se )?(?:sont|est|a|ont|s'est) (?:vue?s? )?(?:refuser|refuse)|echou\w*|echecs?|ratee?s?|refusee?s?|rejetee?s?|infructueu\w*|en erreurs?|erreurs?|errors?|failed|failures?|\bko\b|"
    r"non abouti\w*|invalides?|a echoue|n'ont pas abouti|n'a pas abouti|plante\w*"
)
SUCCESS_WORDS = r"reussi\w*|succes|abouti\w*|sans (?:aucune? )?(?:erreurs?|echecs?)|valides?"
# Oracle error messages said in words → their code.
ORA_MESSAGES = {r"privileges? insuffisants?|droits? insuffisants?|insufficient privileges?": 1031,
                r"tables? (?:ou vues? )?(?:inexistantes?|n'existe pas)|table or view does not exist": 942,
                r"(?:nom d'utilisateur ou )?mots? de passe (?:invalides?|incorrects?|errone\w*|faux)|invalid username/password|"
                r"(?:erreurs?|echecs?) (?:de|du|sur le) mots? de passe|mauvais mots? de passe": 1017,
                r"compte verrouille|account is locked": 28000}
# A preamble that says why the question is asked, not what it asks.
PREAMBLE = (r"(?:dans le cadre (?:de|du|des|d')|pour (?:l'audit|le rapport|la revue|le comite|notre|mon|ma|la direction|le rssi))[^,?]{0,80},|"
            r"(?:c'est )?pour (?:le|la) (?:comite|direction|rssi|dpo|revue)[^,?.]{0,40}|"
            r"(?:la direction|le rssi|mon chef|le dpo|le responsable)[^,?]{0,30}? (?:souhaite|veut|voudrait|demande)(?: a)? (?:savoir|connaitre)|"
            r"j'ai besoin (?:de savoir|de connaitre)|(?:je|j') (?:voudrais|souhaiterais|souhaite|aimerais)(?: bien)? (?:savoir|connaitre|avoir|obtenir)?|"
            r"ca me fait peur|par curiosite|"
            # a ticket's or a request's reference ("suite au ticket INC-4412 :"): never a figure of the question
            r"(?:suite (?:a|au|aux) )?(?:(?:l[ae]|mon|notre|votre) )?\b(?:ticket|demande|changement)s? (?:n ?°? ?|no |num(?:ero)? |#)?(?!ora)[a-z]*-?\d+\b|"
            # a ticket number heading the text ("SEC-3315 : ...") or who asked ("Demande de la DRH :")
            r"^\W*(?:inc|sec|chg|req|ritm|tkt|sr|rfc|prb|aud|drh)-?\d{2,7}\s*(?::|—|–|-)|"
            r"^\W*demande (?:de (?:la |du |l')?)?(?:drh|rssi|dsi|dpo|direction|soc|daf|rh|audit|conformite)\s*:|"
            # who asks: "le RSSI demande", "(équipe conformité)"
            r"\b(?:le |la |l')?(?:rssi|soc|dsi|dpo|cil|direction|manager|responsable \w+|auditeurs? \w*) (?:demande|veut|voudrait|souhaite|aimerait|a besoin)\w*(?: (?:de|d'|que|qu'|savoir))?|"
            r"\((?:equipe|service|cellule) (?:conformite|securite|audit|controle interne|juridique|rh)\)")
ORA_CODE = r"\bora[- ]?0*(?P<code>\d{3,5})\b|\b(?:erreur|code)s? (?:ora[- ]?)?0*(?P<code2>\d{3,5})\b"

# --------------------------------------------------------------------------- measures and shapes

COUNT_WORDS = r"combien de fois|combien|nombre|nbre|nb|total|count|compter|comptez|^\W*compte\b(?! \w+_)|(?:ont|a|ayant|avait|avaient) compte\b|quantite|volume d'|volumetrie d'|how many"
DISTINCT_WORDS = r"differente?s?|distincte?s?|uniques?|diverse?s?"
SHARE_WORDS = r"fractions?|pourcentages?|proportions?|parts?|ratios?|taux|%|pourcent"
# "quand OS_USERNAME = 'oracle'": a condition on a column, not "when"; "... AND ACTION_NAME = 'SELECT'"
COLUMN_CONDITION = (r"\b(?:quand|lorsque|and)(?= (?:dbusername|os_username|userhost|client_program_name|terminal|"
                    r"action_name|object_name|object_schema|return_code|session_id) ?(?:=|<>|!=|not in\b|in\b|"
                    r"like\b|vaut\b|est egal))")
LAST_WORDS = (
    r"(?:les )?(?:plus recents?|plus recentes?)|derniers|dernieres|"
    r"la derniere fois|(?:le |la )?derniere?|(?:le |la )?plus recente?|quand|a quelle (?:date|heure)|last"
)
FIRST_WORDS = (
    r"depuis quand|(?:les |le |la )?plus ancienn?e?s?(?: d'abord)?|premiers|premieres|(?:a-t-(?:il|elle) |a |ont )commence\b|commence(?:-t-(?:il|elle))?(?= ?[?.]|$)|demarre\w*|1ere|1er|la premiere fois|(?:le |la )?premiere?|(?:le |la )?plus ancienn?e?"
)
COVERAGE_WORDS = (
    r"(?:combien de jours d'|profondeur d'|l')historique|jusqu'ou remontent|remontent|jusqu'ou|profondeur|s'etal\w*|"
    r"(?:commencent|debutent) et (?:finissent|se terminent)|vont les|"
    r"de quand a quand|depuis quand et jusqu'a quand|sur quelle periode|quelle periode|periode (?:couverte|des donnees|d'audit)|couvre(?:nt)?|couverture|depuis quand (?:les donnees|l'audit|la piste|on a|a-t-on|avons-nous|dispose|existe|il y a|y a)|"
    r"plage (?:de dates|temporelle)|premier et (?:le )?dernier evenements?|dates? (?:de debut|extremes)|"
    r"debut et (?:la )?fin des donnees|anciennete des donnees"
)
DETAIL_WORDS = (
    r"montre[rz]?(?:-les|-moi| moi| les)?|affiche[rz]?(?:-les|-moi)?|liste[rz]?(?:-les|-moi)?|detaille[rz]?|details?|"
    r"lesquel(?:le)?s|lesquels|quel(?:le)?s sont[- ]ils|quel(?:le)?s sont[- ]elles|voir|donne-moi les|donnez les|sors?(?:-moi)?|le detail|extrait|c'(?:etait|est|etaient) quoi|concretement|(?:qui |il )?s'est passe(?: quoi)?|s'est-il passe|(?:il )?y a eu quoi|quoi de neuf"
)
_ADJ = (r"actifs?|actives?|utilises?|utilisees?|frequente?s?|souvent|sollicitee?s?|accedee?s?|consultee?s?|touchee?s?|"
        r"nombreu(?:x|ses)|importante?s?|occupee?s?|chargee?s?|visee?s?|(?:modifies?|modifiees?)|lue?s?|courante?s?|repandue?s?")
RANK_MOST = (
    r"(?:le|la|les) plus longtemps|(?:le|la|les) plus longu?e?s?|(?:le|la|les) plus (?:" + _ADJ + r")|(?:le|la|les) plus grand nombre (?:d'|de )|(?:le|la|les) plus (?:d'|de )?|"
    r"top|classe[rz]?|principaux|principales|majoritaires?|(?:le )?maximum d'|max d'|(?:le )?plus d'|classement"
)
RANK_LEAST = (r"(?:le|la|les) plus (?:rares?|tranquilles?|calmes?|creu(?:x|ses?))|(?:le|la|les) moins (?:charge|chargee|chargees|active)s?|du moins (?:actif|active)s? au plus (?:actif|active)s?|"
    r"(?:le|la|les) plus courte?s?|(?:le|la|les) moins (?:" + _ADJ + r")|(?:le|la|les) moins (?:d'|de )?|"
              r"(?:le )?minimum d'|rarement")
GROUP_WORDS = r"par|/|\bx\b|pour chaque|^\W*chaque|, chaque|pour chacun des|pour chacune des|selon (?:le |la |les )?|reparti\w* par|ventil\w* par|en fonction (?:du|de la|des)|groupes? par|detail par|by"
SESSION_OPEN = r"(?:(?:sont|est|soient|etaient|etait) )?(?:encore|toujours) connecte\w*|connecte\w* (?:(?:a|sur) la base )?(?:encore|toujours)|sessions? (?:qui )?(?:(?:sont|soient|restent|etaient|est|reste) )?(?:encore|toujours|actuellement) (?:ouvertes?|actives?|en cours)|sessions? (?:en cours|non fermees?|pas fermees?|jamais fermees?)|sans deconnexion|jamais deconnecte\w*|(?:avec )?(?:un |une )?(?:logon|connexion) (?:sans|mais (?:pas|sans|aucun)) (?:aucun |de |d'|le )?(?:logoff|deconnexion)|sans (?:aucun |de |le )?logoff|(?:pas|jamais) de logoff"
DURATION_WORDS = (r"durees? (?:moyennes?|maximales?|minimales?|maxi|max|min)|durees? en moyenne|en moyenne|moyenne|durees?|combien de temps|"
                  r"longest|(?:a |ont |avait |avaient )?dure\w*")
EVENT_NOUNS = (
    r"evenements?|events?|actions?|operations?|activites?|activite|requetes?|instructions?|ordres?|commandes?|traces?|"
    r"lignes? d'audit|lignes?|enregistrements?|entrees?|acces|statements?|choses?|trucs?|faits?|actes?|audits?|logs?"
)
EXCLUDE_WORDS = (
    r"abstraction faite d[eu']s?|en laissant de cote|laisse\w* de cote|en mettant de cote|mise?s? de cote|a l'exeption d[eu']s?|enleve[rz]?|retire[rz]?|et si on (?:enleve|retire)|sauf|hors|excepte\w*|a l'exception d[eu']s?|a part|en dehors d[eu']s?|autres? que|sans compter|en excluant|exclu\w*|en omettant|"
    r"sans les?|sans la|sans(?! (?:jamais|aucune?)(?: y)? (?:faire|avoir fait|effectuer|lancer|executer)\b)|(?:mais |et |ou )?pas (?:sur|dans|par|depuis|avec|pour|chez|de la|du|des)|ne (?:sont|soient|est|etait|sont|viennent|vient|proviennent|provient) pas|n'(?:est|etait|etaient) pas|pas (?:les?|la|de|d')|non|!=|<>|not in"
)
HAVING_BOTH = r"a la fois|(?:tant|aussi bien) (?:des? )?"
HAVING_ONLY = r"uniquement|seulement|exclusivement|que des|rien d'autre que"
HAVING_NEVER = r"sans (?:jamais|aucune?)(?: y)?(?: (?:faire|avoir fait|effectuer|lancer|executer))?(?= (?:de |d'|des |un |une ))|jamais|aucune? fois|n'(?:a|ont|avait|avaient)(?: fait| effectue| eu| lance)? aucune?"
SEQUENCE_WORDS = r"(?:du|sur le|de la|sur la) meme (?:objet|table)|meme (?:objet|table)|suivie?s? (?:d'une?|de|par)|puis|et ensuite|avant (?:un|une)|juste apres(?! (?:un|une|le|la|l')\b)"
# The same, the later action said first: "des REVOKE après un GRANT", "un DROP précédé d'un CREATE".
SEQUENCE_BACK = r"(?:ont |a |avoir )?suivie?s? (?:un|une|le|la|l')|suivant (?:un|une|le|la|l')|(?:juste )?apres (?:un|une|le|la|l'|avoir ete)|precedee?s?"
COMPARE_WORDS = r"par rapport (?:a|au|aux)|compare\w*(?: (?:a|au|avec))?|versus|\bvs\.?|contre|comparaison (?:entre|de)?|evolution (?:entre|par rapport)|difference entre"
THRESHOLD = (
    r"(?P<op>plus d'|plus de|\+ de|\+|au moins|(?<!en )moins de|au plus|superieure? a|inferieure? a|>=|>|<=|<|depassant|depasse|excedant|au-dela de)\s*"
    r"(?P<n>\d+|une?|deux|trois|quatre|cinq|six|sept|huit|neuf|dix)"
    r"(?:\s+(?:" + EVENT_NOUNS + r"|fois))?"
)
# The window of a threshold: "en 5 minutes", "en un quart d'heure", "/10min".
WINDOW = (r"(?:sur une fenetre d'|sur une fenetre de|fenetre de|en moins d'|en|dans|sur|par|pendant|en moins de|/)\s*(?:les |la |un |une )?(?:(?P<w>\d+|une?|deux|cinq|dix|quinze|trente)\s*)?"
          r"(?P<unit>minutes?|mn|min|secondes?|sec|heures?|h|quart d'heure|(?<=/ )jour|(?<=/)jour)")
OFF_HOURS = r"(?:en )?dehors des heures (?:de bureau|ouvrees|ouvrables|de travail|normales)|hors (?:des )?heures (?:de bureau|ouvrees|ouvrables|de travail|normales)|(?:hors|en dehors) (?:des )?heures? (?:ouvr\w*|de boulot|de bureau|de travail)|hors heures|en heures non ouvrees|la nuit ou le week-?end|heures non ouvrees"
IN_HOURS = r"(?:pendant|durant|en) (?:les )?heures (?:de bureau|ouvrees|ouvrables|de travail)|heures ouvrees"
HOUR_WINDOW = (r"(?:entre|de)\s+(?:(?P<a>\d{1,2})\s*(?:h|heures?|:00)\s*(?P<am>\d{2})?|(?P<am0>minuit|midi))\s+(?:et|a)\s+"
               r"(?:(?P<b>\d{1,2})\s*(?:h|heures?|:00)\s*(?P<bm>\d{2})?|(?P<bm0>minuit|midi))")
HOUR_AFTER = r"(?:apres|a partir de|passe)\s+(?P<a>\d{1,2})\s*(?:h|heures?)\b"
HOUR_BEFORE = r"avant\s+(?P<b>\d{1,2})\s*(?:h|heures?)\b"
DAYPARTS = {r"(?:la|de) nuit|nocturnes?|pendant la nuit|durant la nuit": (0, 6), r"le soir|en soiree|(?:du|de) soir": (18, 24),
            r"le matin|(?:du|de) matin|en matinee": (6, 12), r"l'apres-midi|(?:d')?apres[- ]midi": (12, 18)}  # fmt: skip

# --------------------------------------------------------------------------- outside the trail

# What an audit trail does not record: one sentence, no figure.
CONNECTED_NOW = "qui est connecté à l'instant (la piste enregistre les connexions et les déconnexions, pas l'état présent)"
OUT_OF_SCOPE: list[tuple[str, str]] = [
    (
        r"(?:combien|nombre) de lignes\b.{0,40}\b(?:effac|supprim|modifi|inser|mis(?:es)? a jour|touch|impact)\w*",
        "le nombre de lignes touchées (la piste compte les instructions, pas les lignes)",
    ),
    (
        r"actuellement (?:accorde|attribue|donne)\w*|droits actuels|privileges actuels|(?:a|ont) (?:encore|toujours) (?:le|les) (?:role|droits?|privileges?)|"
        r"possede\w* (?:le|les) (?:role|droits?|privileges?)|possede\w* actuellement|actuellement (?:possede|detien)\w*|dispos\w* (?:(?:aujourd'hui|actuellement|encore|toujours|deja) )?(?:du|des|de|d'un|d'une|le|la|les) (?:role|droits?|privileges?)|detien\w*|est(?:-il| il)? (?:encore |toujours )?(?:verrouille|bloque|expire)\w*",
        "l'état actuel des comptes et des droits (la piste enregistre les changements, pas l'état)",
    ),
    (
        r"connecte\w* (?:(?:a|sur) la base )?(?:en ce moment|a l'instant(?: meme)?|maintenant|actuellement)|"
        r"(?:en ce moment|a l'instant|maintenant|actuellement) connecte\w*",
        CONNECTED_NOW,
    ),
    (r"\bcpu\b|processeurs?|charge (?:du serveur|machine|systeme)|load average", "l'usage du processeur"),
    (
        r"(?:charge|debit|activite|volume)s? (?:d')?(?:io|i/o|e/s|entrees?[ -]sorties?)\b|\b(?:io|i/o|iops)\b(?= du| de la| disque| serveur)|\biops\b",
        "les entrées-sorties du serveur",
    ),
    (r"memoire|\bram\b|\bsga\b|\bpga\b|buffer cache", "la mémoire"),
    (
        r"espace disque|\bdisques?\b|stockage|tablespaces?|datafiles?|fichiers? de donnees|taille|volumetrie des tables|(?:plus )?(?:grosses?|grandes?|volumineu\w*) tables?|tables? (?:la |les )?plus (?:grosses?|grandes?|volumineu\w*|lourde?s?)|\bgo\b|\bmo\b|octets|lignes? contien\w*|contient (?:la|le) ta\w*|combien de lignes? (?:contient|dans|a|y a-t-il|y a t il|il y a|y a|fait)|fait combien de lignes|nombre de lignes (?:de|dans)(?! (?:la |l')?(?:trace|piste|audit|journal)\b)|num_rows|last_analyzed|dba_tables|dba_segments|stats? (?:de|des|sur) (?:la |les )?tables?|statistiques (?:de|des|sur) (?:la |les )?tables?",
        "la taille des objets et l'espace disque",
    ),
    (
        r"sauvegardes?|backups?|\brman\b|restaurations?|archivelogs?|redo|log switch\w*|switch\w* de (?:log|journaux)|data ?pump|\bexpdp\b|\bimpdp\b",
        "les sauvegardes et journaux de reprise",
    ),
    (
        r"parametres?|init\.ora|spfile|configuration|\bversion d'oracle|\bpatch\w*|open_cursors",
        "la configuration de la base",
    ),
    (
        r"\bawr\b|\bash\b|millisecondes?|temps d'execution|duree d'execution|statspack|fragmente\w*|fragmentation|performances?|lenteurs?|lente?s?|ralenti\w*|temps de reponse|plans? d'exec(?:ution)?\b|optimiseur|\brame(?:nt|r)?\b|latences?|verrous?|locks?|deadlocks?|attentes?|wait events?",
        "les performances",
    ),
    (
        r"(?:combien|nombre) de (?:clients?|salaries|employes|produits|factures|contrats)\b|commandes? (?:clients?|passees?)|passe\w* (?:des |le plus de |plus de )?commandes|clients? (?:qui )?(?:ont|a) passe|telephones?|numeros? de (?:tel|telephone)|adresses? (?:postale|mail|email)|e-?mails?|date d'embauche|embauche|factures?|impaye\w*|(?<!table des )(?<!table de )(?<!table des )(?<!table de )salaires?(?! ?\w*table)|montants?|chiffres? d'affaires|\bprix\b|factur\w* (?:de|du) client|combien (?:gagne|coute)|\bgagne\w*\b|\bargent\b|virements?|budget de|solde",
        "les valeurs métier contenues dans les tables",
    ),
    (r"licences?|couts? de licence", "les licences"),
    (
        r"(?:quel est|c'est quoi|donne\w*(?: moi)?|affiche\w*|montre\w*(?: moi)?) (?:le|les) mots? de passe|"
        r"expir\w* (?:du |le |les |des )?mots? de passe|mots? de passe (?:expir\w*|actuels?)",
        "les mots de passe et leur expiration (la piste enregistre seulement leurs changements)",
    ),
    (r"contenu (?:de |du |des )(?:la |le |les )?(?:tables?|vues?)", "les valeurs métier contenues dans les tables"),
    (r"meteo|football|recette|quel temps (?:va-t-il faire|fera-t-il|il fait|fait-il|va faire)|va faire quel temps",
     "un sujet sans rapport avec la base"),
    (r"\blisteners?\b|\btnsnames\b|\bsqlnet\.ora\b|(?:la base|l'instance|le serveur) (?:est[- ]elle |est )?(?:up|down|demarree|arretee|en ligne)\b",
     "l'état du serveur et du listener"),
]

# --------------------------------------------------------------------------- small talk, help

ANOMALY_WORDS = r"anomalies?|anorma\w*|suspect\w*|inhabituel\w*|bizarres?|etranges?|louche\w*|intrusions?|attaques?|menaces?"
WHO_WHAT = r"qui fait quoi|qui a fait quoi|qui faisait quoi"
WHAT_DONE = (
    r"(?:fait|font|faisait|faisaient|a fait|ont fait|fabrique\w*) quoi|qu'(?:a|ont|avait|avaient)(?:-t)?-?(?:il|elle|ils|elles|on)? ?fait|"
    r"que (?:fait|font|faisait)|ce qu'(?:il|elle|ils|elles|a|ont) (?:a |ont )?fait|qu'est-ce qu'(?:il|elle|ils|elles) (?:a|ont) fait"
)
SAME_WORDS = r"(?:du|de la|dans la|dans une|dans le|sur la|sur le|par le|par la|de cette|de ce|sur cette|sur ce|cette|ce|le|la|une) meme (?:objet|table|utilisateur|user|compte|session|machine|poste|schema|object_name|object_schema|dbusername|userhost|sessionid|session_id|unified_audit_sessionid)\b"
COMMANDS = (
    r"(?:pouvez-vous|peux-tu|peux tu|pourriez-vous|pourrais-tu|tu peux|vous pouvez|merci de) (?:me |nous |lui |leur )?"
    r"(?:purger|supprimer|effacer|vider|creer|modifier|changer|revoquer|retirer|accorder|octroyer|attribuer|"
    r"verrouiller|deverrouiller|bloquer|debloquer|desactiver|reactiver|activer|tuer|arreter|redemarrer|"
    r"reinitialiser|executer|deconnecter)\b|"
    r"^\W*(?:cree[zr]?|creons|supprime[zr]?|efface[zr]?|ajoute[zr]?|donne[zr]? (?:le|les|un) (?:droits?|roles?|privileges?)|accorde[zr]?|"
    r"revoque[zr]?|modifie[zr]?|change[zr]? le mot de passe|reinitialise[zr]?|lance[zr]? (?:une|un|la|le)|tue[zr]?|kill|"
    r"verrouille[zr]?|deverrouille[zr]?|bloque[zr]?|debloque[zr]?|arrete[zr]?|redemarre[zr]?|desactive[zr]?|active[zr]?)\b"
)
HELP = r"\baide\b|\bhelp\b|que (?:sais|peux)[- ]tu|tu (?:sais|peux) faire|comment (?:ca marche|t'utiliser)|quelles? questions|exemples? de questions"
SMALL_TALK = r"^\W*(?:bonjour|salut|bonsoir|hello|coucou|merci|ok|d'accord|au revoir|bye|ca va|bravo|super|parfait|cool)\W*$"

# --------------------------------------------------------------------------- fillers

# Words that carry no condition: articles, pronouns, auxiliaries, question words, politeness, and
# the generic verbs of "who did what".
FILLERS = set("""
a à ai as lieu situe situes situee situees constitue constituee constitues constituees provient proviennent provoque provoqué provoquée provoqués provoquées provoquent causé causée causés causées travaille travaillent travaillé travaillait travaillaient avait avaient avez avons ont eu eue eues eus ete été etait etaient est sont soit soient sera seront etre être
au aux du des de d' l' la le les un une une l d s n qu c j m t y en dans sur sous pour par avec vers chez entre
et ou ni mais donc or car que qui quoi quel quelle quels quelles lequel laquelle lesquels lesquelles dont ou où
ce cet cette ces ca ça cela ceci celui celle ceux celles il ils elle elles on nous vous je tu me moi te toi se lui leur leurs
son sa ses mon ma mes ton ta tes notre nos votre vos
ne tres très bien tout tous toute toutes aussi encore deja déjà
fait faits faite faites faire fais font faisait faisaient effectue effectué effectues effectuee effectuees effectuer realise realisees realises realiser
passe passé passes passee passees lance lances lancee lancees execute executes executee executees
y a-t-il il t-il t-elle -t-il -t-elle -il -elle est-ce est-ce-que stp svp merci please bonjour salut
donne donner donnez dis dire dites indique indiquer indiquez peux peut pouvez pourrais pourriez veux voudrais
combien comment quand pourquoi
base bdd bd database oracle piste audit trail journal logs log unified_audit_trail aud$ donnees données
eventuellement éventuellement actuellement tout-le-monde
y-a-t-il ya y'a yen yen-a il-y-a cas
svp merci beaucoup
ayant ayant-eu avoir
quelqu'un quelqu un
au total en tout au global globalement
jour quelque quelques chose d'abord abord porte portent portant etendent etend chargees chargee actuellement observee observees observe
enregistrees enregistree relevees relevee levees levee menees menee apportees apportee subi subies cumulent cumule realisees realisee
effectuees effectuee proprement disons davantage durant existe existe-t-il inclus inclusivement general fois cette-fois
appli applis d'appli d'applis valeurs valeur fournir indiquer extraire m'indiquer m'extraire me donner obtenir avoir souhaite
souhaiterais voudrais aimerais j'aimerais besoin savoir connaitre si date dates utilisation utilisations usage event_timestamp timestamp horodatage depuis execution executions
rencontre rencontres rencontrees balance joue jouent audite audites auditees tape tapent souvent touche touches touchee touchees toucher
genere generes generees generee vient viennent venant servent sert servi passent passe correspond correspondent capture captures capturees
exerce exerces exercee recu tourne tournes survenu survenus survenues disponible disponibles dispose dispose-t-on concretement
genre moment comme seul seule totale total ensemble l'ensemble parmi complete complet repartition ventilation
ouvert ouverte ouvertes ouverts ouvre ouvrent demarre demarrees lancees lancee lancer lancent cote via
declenche declenchees declenches clairement exactement precisement environ
accede accedes accedee accedees acceder acces utilise utilises utilisee utilisees utiliser actif actifs active actives
correspondants correspondantes correspondant concernes concernees associes associees lies liees
presents presentes present presente trouve trouves apparait apparaissent enregistre enregistres enregistrees
where excusez excusez-moi excuse excuse-moi deranger derange auriez auriez-vous aurais aurais-tu demandais
matrice volume
euh bah ben identifier identifie identifiez accumule accumules accumulee accumulees cumule cumules
bosse bosses bossee bossees provenant provenance venant
""".split())  # noqa: SIM905  # fmt: skip
FILLER_PHRASES = (
    r"(?:depuis|a partir|venant|provenant)(?: (?:de|du|des|d'))?(?: (?:le|la|les))?(?= (?:l')?(?:hosts?|machines?|postes?|serveurs?|hotes?|pcs?|ip|adresses?|terminal|programmes?))|(?:a|ont|avoir) eu lieu|se sont produits?|s'est produit|est-ce qu(?:e|')|y a-t-il(?: eu)?|y a t il(?: eu)?|il y a(?: eu)?|a-t-(?:il|elle|on)|ont-(?:ils|elles)|s'est-(?:il|elle)|"
    r"(?:sur |pour |durant |pendant )?la meme periode|a l'origine d(?:e|es|u|')|"
    r"dans la base(?: de donnees)?|de la base|sur la base|dans (?:la piste|le journal|les logs|l'audit)|d'audit|"
    r"peux-tu|pouvez-vous|pourrais-tu|je (?:veux|voudrais|souhaite) (?:savoir|connaitre|voir)|dis-moi|donne-moi|montre-moi|"
    r"s'il (?:te|vous) plait|au total|en tout|au global|a (?:eu|ete)|ont (?:eu|ete)|ya-t-il|ya t il|ya|y'a|"
    r"qu'est-ce qu(?:e|i)|qu'est ce qu(?:e|i)|qu'a|qu'ont|qu'il|qu'elle|c'est qui|c'est quoi|qui est-ce qui|"
    r"(?<=un )nouveau(?= (?:grant|revoke|create|drop|alter|logon|truncate|insert|update|delete|select)\b)|(?<=une )nouvelle(?= connexion)|"
    r"(?:et )?si oui|(?<=quand )remonte(?= (?:la |le |l')?(?:derni|premi))|"  # "remonte" alone: how far back
    r"de nouveau|de maniere|sur oracle|d'oracle|en base|a eu lieu|ont eu lieu|avoir lieu|se sont produits?|s'est produit|"
    r"(?:remonte|enregistre|trace|capte|logge)e?s?(?= par\b)|(?:reparti|ventile|decoupe|detaille)e?s?(?=,? par\b)|s'est-(?:il|elle) produite?|"
    r"(?:parmi|d'entre) (?:eux|elles|ceux-ci|celles-ci)|^\W*meme question(?: pour)?|^\W*(?:(?:et )?(?:la|c'est la) )?meme chose pour|"
    r"(?<=fois )chacun(?:e)?(?= ?[?.]|$)|(?<=evenements )chacun(?:e)?(?= ?[?.]|$)|"
    r"(?<=combien )chacun(?:e)?(?= ?[?.]|$)|serait-il possible (?:de|d')|(?<=au )cours(?= d)|"
    r"(?<=logiciels )clients|(?<=logiciel )client|(?<=programmes )clients|(?<=programme )client|"
    r"limitee?s? (?:aux|au|a la|a l')(?= heures)|(?<=les deux )chiffres|"
    r"(?<=\w )plutot(?= ?[?.!]*$)|petite question|(?:a )?un moment ou (?:a )?un autre|je me demandais(?: si)?|pour (?:le|un|notre) reporting(?: \w+)?"
)

# Words of the trade typed short: the spelling pass reads them as the long form.
ABBREVIATIONS = {"modifs": "modifications", "modif": "modification", "cnx": "connexions", "auj": "aujourd'hui", "conn": "connexions", "connex": "connexions", "we": "week-end",
                 "evts": "evenements", "opes": "operations", "ops": "operations", "evt": "evenement", "tbl": "table", "util": "utilisateur",
                 "utils": "utilisateurs", "sess": "sessions", "sem": "semaine", "ds": "dans",
                 "cbien": "combien", "cmb": "combien", "cb": "combien", "qqn": "quelqu'un", "qq1": "quelqu'un",
                 "dll": "ddl", "moy": "moyenne"}
# How a logon was authenticated, said in words → the stored authentication_type.
AUTH_WORDS = {
    r"(?:authentifiee?s? |auth(?:entification)? |connexions? )?(?:par (?:le |l')?|en |via (?:l')?)(?:os(?![ _]?users?\b| utilisateurs?\b)|systeme d'exploitation|authentification externe)|(?:en |par |via )?auth(?:entification)? (?:os|externe)": "OS",
    r"(?:authentifiee?s? |auth(?:entification)? )?(?:par|en|avec) (?:un )?mots? de passe|\bpassword\b": "PASSWORD",
}
TOKEN = re.compile(r"[a-z0-9_$#@][a-z0-9_$#@./'-]*[a-z0-9_$#]|[a-z0-9_$#%]")
# fmt: on
