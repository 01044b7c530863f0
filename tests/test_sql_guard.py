"""The SQL console's read-only decision, on a corpus of statements to refuse and queries to run."""

from pathlib import Path

import pytest

from sql_guard import ORACLE_BUILTINS, QueryRefused, check_query, refusal_reason

DATA = Path(__file__).parent / "data"


def corpus(name: str) -> list[str]:
    """Cases of a corpus file, separated by lines holding only '---'."""
    text = (DATA / name).read_text(encoding="utf-8")
    return [case.strip("\n") for case in text.split("\n---\n") if case.strip()]


REFUSED = corpus("sql_refused.sql")
ALLOWED = corpus("sql_allowed.sql")


def test_corpus_sizes():
    assert len(REFUSED) >= 60
    assert len(ALLOWED) >= 40


@pytest.mark.parametrize("sql", REFUSED, ids=[f"refused-{i}" for i in range(len(REFUSED))])
def test_refused(sql):
    reason = refusal_reason(sql)
    assert reason, f"should be refused: {sql}"


@pytest.mark.parametrize("sql", ALLOWED, ids=[f"allowed-{i}" for i in range(len(ALLOWED))])
def test_allowed(sql):
    assert refusal_reason(sql) is None


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("DELETE FROM t", "pas « DELETE »"),
        ("SELECT 1 FROM dual; DELETE FROM t", "Une seule instruction"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
        ("SELECT a INTO x FROM t", "INTO"),
        ("SELECT * FROM t@remote", "liens de base de données"),
        ("BEGIN NULL; END;", "PL/SQL"),
        ("SELECT my_fn(a) FROM t", "MY_FN"),
        ("SELECT pkg.fn(a) FROM t", "qualifié"),
        ("SELECT FROM", "illisible"),
        ("   ", "vide"),
    ],
)
def test_reasons_are_french_and_precise(sql, words):
    with pytest.raises(QueryRefused) as info:
        check_query(sql)
    assert words in str(info.value)


def test_trailing_semicolons_and_comments_are_not_executed():
    checked = check_query("SELECT 1 FROM dual ; -- the end\n")
    assert checked.sql == "SELECT 1 FROM dual"
    assert checked.kind == "select"


def test_set_operation_kind_and_bind_names():
    checked = check_query("SELECT a FROM t WHERE b = :b1 UNION SELECT a FROM u WHERE c = :2 AND d = :b1")
    assert checked.kind == "union"
    assert checked.bind_names == ["b1", "2"]


def test_user_function_named_like_a_sqlglot_alias_is_refused():
    # sqlglot maps these names to known functions; Oracle has no such built-in, so a user function runs
    for name in ("STRING_AGG", "RAND", "IFNULL", "SQUARE", "ARG_MAX"):
        assert name not in ORACLE_BUILTINS
        assert refusal_reason(f"SELECT {name}(a, b) FROM t"), name


def test_builtin_called_in_lower_case_runs():
    assert refusal_reason("select nvl(a, 0), to_char(sysdate, 'YYYY') from t") is None


def test_a_very_long_query_is_refused():
    assert "trop longue" in refusal_reason("SELECT 1 FROM dual WHERE 1 = 1" + " AND 1 = 1" * 20_000)


def test_control_characters_are_refused():
    assert "contrôle" in refusal_reason("SELECT 1 FROM dual\x00; DELETE FROM t")
    assert refusal_reason("SELECT 1\r\nFROM\tdual") is None
