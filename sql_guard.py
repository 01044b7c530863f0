"""The read-only decision for the SQL console, taken on sqlglot's Oracle parse tree.

A statement runs only when it is one query: a SELECT, a set operation of SELECTs, or a WITH whose
body is one, with no FOR UPDATE, no INTO, no database link, no DML/DDL/command anywhere in its tree,
and only Oracle built-in functions (a user function can write through an autonomous transaction).
Function names are taken as written: the parser below tags every function node with the name it
was called by, so a user function named like a sqlglot alias (STRING_AGG, RAND...) is not mistaken
for an Oracle built-in. Anything the parser cannot read is refused.

This is the first line of defence; the server runs each query in a read-only transaction with a
call timeout, and the account should only be able to read.
"""

import logging
from dataclasses import dataclass, field
from typing import ClassVar

from sqlglot import exp
from sqlglot.dialects.oracle import Oracle
from sqlglot.errors import ParseError, TokenError
from sqlglot.parsers.oracle import OracleParser
from sqlglot.tokens import TokenType

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to Command" warnings

MAX_QUERY_CHARS = 100_000
NAME_KEY = "guard_name"

# Oracle SQL built-in functions that only read (Oracle Database SQL Language Reference, "Functions").
_BUILTIN_NAMES = """
    ABS ACOS ASIN ATAN ATAN2 BITAND CEIL COS COSH EXP FLOOR LN LOG MOD NANVL POWER REMAINDER ROUND
    SIGN SIN SINH SQRT TAN TANH TRUNC WIDTH_BUCKET
    ASCII ASCIISTR CHR CONCAT INITCAP INSTR INSTRB INSTRC LENGTH LENGTHB LENGTHC LOWER LPAD LTRIM
    NCHR NLS_INITCAP NLS_LOWER NLS_UPPER NLSSORT REGEXP_COUNT REGEXP_INSTR REGEXP_LIKE REGEXP_REPLACE
    REGEXP_SUBSTR REPLACE RPAD RTRIM SOUNDEX SUBSTR SUBSTRB SUBSTRC TRANSLATE TRIM UPPER UNISTR
    ADD_MONTHS CURRENT_DATE CURRENT_TIMESTAMP DBTIMEZONE EXTRACT FROM_TZ LAST_DAY LOCALTIMESTAMP
    MONTHS_BETWEEN NEW_TIME NEXT_DAY NUMTODSINTERVAL NUMTOYMINTERVAL SESSIONTIMEZONE SYS_EXTRACT_UTC
    SYSDATE SYSTIMESTAMP TO_CHAR TO_DATE TO_DSINTERVAL TO_TIMESTAMP TO_TIMESTAMP_TZ TO_YMINTERVAL
    TZ_OFFSET
    BIN_TO_NUM CAST CHARTOROWID CONVERT HEXTORAW RAWTOHEX ROWIDTOCHAR TO_BINARY_DOUBLE TO_BINARY_FLOAT
    TO_CLOB TO_NCHAR TO_NCLOB TO_NUMBER TO_MULTI_BYTE TO_SINGLE_BYTE VALIDATE_CONVERSION
    COALESCE DECODE GREATEST LEAST LNNVL NULLIF NVL NVL2 DUMP ORA_HASH STANDARD_HASH VSIZE
    SYS_CONTEXT USER UID USERENV SYS_GUID
    ANY_VALUE APPROX_COUNT_DISTINCT APPROX_MEDIAN APPROX_PERCENTILE AVG CORR COUNT COVAR_POP
    COVAR_SAMP CUME_DIST DENSE_RANK FIRST GROUP_ID GROUPING GROUPING_ID LAST LISTAGG MAX MEDIAN MIN
    PERCENTILE_CONT PERCENTILE_DISC PERCENT_RANK RANK REGR_AVGX REGR_AVGY REGR_COUNT REGR_INTERCEPT
    REGR_R2 REGR_SLOPE REGR_SXX REGR_SXY REGR_SYY STATS_MODE STDDEV STDDEV_POP STDDEV_SAMP SUM VAR_POP
    VAR_SAMP VARIANCE
    FIRST_VALUE LAG LAST_VALUE LEAD NTH_VALUE NTILE RATIO_TO_REPORT ROW_NUMBER
    SYS_CONNECT_BY_PATH CONNECT_BY_ROOT PRIOR
    JSON_ARRAY JSON_ARRAYAGG JSON_EXISTS JSON_OBJECT JSON_OBJECTAGG JSON_QUERY JSON_TABLE JSON_VALUE
    CASE ANY
"""
ORACLE_BUILTINS = frozenset(_BUILTIN_NAMES.split())

# Function-like nodes sqlglot builds from syntax rather than from a call (operators, CASE branches,
# EXISTS, typed literals such as DATE '2024-01-01'): no user code can hide behind them.
SYNTAX_NODES: tuple[type[exp.Expr], ...] = (
    exp.Binary,
    exp.Unary,
    exp.Connector,
    exp.If,
    exp.Exists,
    exp.Cast,
    exp.DateStrToDate,
    exp.StrToTime,
    exp.CurrentDate,
    exp.CurrentTimestamp,
    exp.Localtimestamp,
    exp.Systimestamp,
)

REFUSED_NODES: tuple[tuple[type[exp.Expr], str], ...] = (
    (exp.DML, "les instructions de modification (INSERT, UPDATE, DELETE, MERGE) sont interdites"),
    (exp.DDL, "les instructions de définition (CREATE, DROP, ALTER…) sont interdites"),
    (exp.Command, "les commandes ne sont pas autorisées"),
    (exp.Lock, "FOR UPDATE est interdit : la console ne pose aucun verrou"),
    (exp.Into, "SELECT … INTO est interdit"),
    (exp.Parameter, "les liens de base de données (@) sont interdits"),
    (exp.NextValueFor, "l'appel d'une séquence est interdit"),
)
SEQUENCE_PSEUDOCOLUMNS = {"NEXTVAL", "CURRVAL"}
QUERY_START = {TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN}
PLSQL_START = {"BEGIN", "DECLARE"}
STRING_TOKENS = {
    TokenType.STRING,
    TokenType.NATIONAL_STRING,
    TokenType.RAW_STRING,
    TokenType.HEX_STRING,
    TokenType.BIT_STRING,
    TokenType.BYTE_STRING,
    TokenType.UNICODE_STRING,
}


class QueryRefused(ValueError):
    """The statement is not a single read-only query; the message (French) says why."""


@dataclass(frozen=True)
class CheckedQuery:
    sql: str  # the text to execute: the statement without its trailing semicolons
    kind: str  # "select", "union", "intersect", "except"
    bind_names: list[str] = field(default_factory=list)


def _tagged(name: str, parse):
    def parse_and_tag(self):
        node = parse(self)
        if isinstance(node, exp.Expr):
            node.meta.setdefault(NAME_KEY, name)
        return node

    return parse_and_tag


class GuardParser(OracleParser):
    # Functions parsed by a dedicated method keep the name they were called by.
    FUNCTION_PARSERS: ClassVar = {k: _tagged(k, v) for k, v in OracleParser.FUNCTION_PARSERS.items()}
    NO_PAREN_FUNCTION_PARSERS: ClassVar = {
        k: _tagged(k, v) for k, v in OracleParser.NO_PAREN_FUNCTION_PARSERS.items()
    }
    # Oracle's positional binds (:1) besides named ones (:name).
    COLON_PLACEHOLDER_TOKENS = OracleParser.COLON_PLACEHOLDER_TOKENS | {TokenType.NUMBER}


class GuardOracle(Oracle):
    ORIGINAL_NAME_META_KEY = NAME_KEY  # functions sqlglot knows keep the name they were called by
    Parser = GuardParser


DIALECT = GuardOracle()


def _function_name(node: exp.Func) -> str | None:
    """The name a function was called by, upper case; None when it comes from syntax."""
    if isinstance(node, exp.Anonymous):
        if isinstance(node.this, exp.Identifier) and node.this.quoted:
            raise QueryRefused(f"appel de fonction entre guillemets refusé : {node.this.name}")
        return str(node.name).upper()
    name = node.meta.get(NAME_KEY)
    return str(name).upper() if name else None


def _check_function(node: exp.Func, quoted_starts: set[int]) -> None:
    if node.meta.get("start") in quoted_starts:
        raise QueryRefused(f"appel de fonction entre guillemets refusé : {node.meta.get(NAME_KEY)}")
    if isinstance(node.parent, exp.Dot) and node.arg_key == "expression":
        raise QueryRefused(
            f"appel de fonction qualifié refusé ({node.parent.sql(dialect=DIALECT)[:60]}) : "
            "seules les fonctions intégrées d'Oracle sont autorisées"
        )
    name = _function_name(node)
    if name is None:
        if isinstance(node, SYNTAX_NODES):
            return
        raise QueryRefused(f"construction non autorisée : {node.key.upper()}")
    if "@" in name:
        raise QueryRefused("les liens de base de données (@) sont interdits")
    if name not in ORACLE_BUILTINS:
        raise QueryRefused(
            f"fonction non autorisée : {name} (seules les fonctions intégrées d'Oracle sont permises)"
        )


def _check_tree(tree: exp.Expr, quoted_starts: set[int]) -> None:
    hints = {id(n) for h in tree.find_all(exp.Hint) for n in h.walk()}  # optimiser hints are comments
    for node in tree.walk():
        if id(node) in hints:
            continue
        for node_type, reason in REFUSED_NODES:
            if isinstance(node, node_type):
                raise QueryRefused(reason[0].upper() + reason[1:] + ".")
        if isinstance(node, exp.Identifier | exp.Var) and "@" in str(node.name):
            raise QueryRefused("Les liens de base de données (@) sont interdits.")
        if isinstance(node, exp.Column) and node.name.upper() in SEQUENCE_PSEUDOCOLUMNS:
            raise QueryRefused("L'appel d'une séquence (NEXTVAL, CURRVAL) est interdit.")
        if isinstance(node, exp.Func):
            try:
                _check_function(node, quoted_starts)
            except QueryRefused as exc:
                message = str(exc)
                raise QueryRefused(message[0].upper() + message[1:] + ".") from None
    for cte in tree.find_all(exp.CTE):
        if not _is_query(cte.this):
            raise QueryRefused("Une clause WITH ne peut alimenter qu'une requête SELECT.")


def _is_query(node: exp.Expr | None) -> bool:
    while isinstance(node, exp.Subquery):
        node = node.this
    if isinstance(node, exp.Select):
        return True
    if isinstance(node, exp.SetOperation):
        return _is_query(node.this) and _is_query(node.expression)
    return False


def _statement_kind(node: exp.Expr) -> str:
    while isinstance(node, exp.Subquery):
        node = node.this
    return node.key


def check_query(sql: str) -> CheckedQuery:
    """Decide whether `sql` is a single read-only query; raise QueryRefused with the reason if not."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("Requête vide.")
    if len(sql) > MAX_QUERY_CHARS:
        raise QueryRefused(f"Requête trop longue (plus de {MAX_QUERY_CHARS} caractères).")
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in sql):
        # the parser and Oracle could read them differently
        raise QueryRefused("La requête contient un caractère de contrôle.")
    try:
        tokens = DIALECT.tokenize(sql)
    except TokenError as exc:
        raise QueryRefused(f"Requête illisible : {str(exc).splitlines()[0][:200]}") from None
    significant = [t for t in tokens if t.token_type != TokenType.SEMICOLON]
    if not significant:
        raise QueryRefused("Requête vide.")
    first = significant[0]
    if first.text.upper() in PLSQL_START:
        raise QueryRefused("Les blocs PL/SQL sont interdits : seule une requête SELECT est acceptée.")
    for token in tokens:
        if token.token_type not in STRING_TOKENS and "@" in token.text:
            raise QueryRefused("Les liens de base de données (@) sont interdits.")
    try:
        parsed = DIALECT.parser().parse(tokens, sql)
        # a comment after the last semicolon comes back as a Semicolon "statement" holding it
        statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as exc:
        reason = str(exc).splitlines()[0][:200]
        raise QueryRefused(f"Requête illisible pour l'analyseur, donc refusée : {reason}") from None
    if len(statements) != 1:
        raise QueryRefused(
            f"Une seule instruction est permise ({len(statements)} trouvées) : "
            "retirez les points-virgules intermédiaires."
        )
    tree = statements[0]
    if first.token_type not in QUERY_START or not _is_query(tree):
        raise QueryRefused(
            f"Seules les requêtes de lecture sont permises (SELECT, WITH … SELECT, UNION…), "
            f"pas « {first.text.upper()} »."
        )
    # A quoted name is case-sensitive: "UPPER"(x) may be a user function, whatever sqlglot maps it to.
    quoted_starts = {t.start for t in tokens if t.token_type == TokenType.IDENTIFIER}
    _check_tree(tree, quoted_starts)
    last = significant[-1]
    binds = []
    for placeholder in tree.find_all(exp.Placeholder):
        name = str(placeholder.name)
        if name and name not in binds:
            binds.append(name)
    return CheckedQuery(sql=sql[: last.end + 1], kind=_statement_kind(tree), bind_names=binds)


def refusal_reason(sql: str) -> str | None:
    """None when `sql` may run, else the reason it is refused."""
    try:
        check_query(sql)
    except QueryRefused as exc:
        return str(exc)
    return None
