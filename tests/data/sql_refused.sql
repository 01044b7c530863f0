-- Statements the SQL console must refuse. Cases are separated by a line holding only "---".
-- DML
DELETE FROM unified_audit_trail
---
DELETE FROM hr.employees WHERE employee_id = 100
---
UPDATE hr.employees SET salary = salary * 2
---
UPDATE employees e SET e.salary = (SELECT MAX(salary) FROM employees) WHERE e.id = 1
---
INSERT INTO audit_copy SELECT * FROM unified_audit_trail
---
INSERT INTO t (a, b) VALUES (1, 'x')
---
INSERT ALL INTO t VALUES (1) INTO u VALUES (2) SELECT * FROM dual
---
MERGE INTO t USING s ON (t.id = s.id) WHEN MATCHED THEN UPDATE SET t.a = s.a WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)
---
-- DDL
DROP TABLE employees
---
DROP TABLE employees PURGE
---
DROP USER scott CASCADE
---
TRUNCATE TABLE unified_audit_trail
---
CREATE TABLE t (a NUMBER)
---
CREATE TABLE t AS SELECT * FROM employees
---
CREATE OR REPLACE VIEW v AS SELECT * FROM employees
---
CREATE INDEX i ON t (a)
---
CREATE USER hacker IDENTIFIED BY pw
---
ALTER TABLE t ADD (b NUMBER)
---
ALTER USER sys IDENTIFIED BY pw
---
ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY'
---
ALTER SYSTEM KILL SESSION '12,345'
---
GRANT DBA TO scott
---
GRANT SELECT ON t TO public
---
REVOKE SELECT ON t FROM scott
---
COMMENT ON TABLE t IS 'x'
---
RENAME t TO u
---
ANALYZE TABLE t COMPUTE STATISTICS
---
AUDIT SELECT ON t
---
NOAUDIT ALL
---
FLASHBACK TABLE t TO BEFORE DROP
---
PURGE RECYCLEBIN
---
LOCK TABLE t IN EXCLUSIVE MODE
---
CREATE OR REPLACE FUNCTION f RETURN NUMBER IS BEGIN RETURN 1; END;
---
-- transaction control and session
COMMIT
---
ROLLBACK
---
SAVEPOINT before_delete
---
SET TRANSACTION READ WRITE
---
SET ROLE dba
---
-- PL/SQL and calls
BEGIN NULL; END;
---
BEGIN DELETE FROM t; END;
---
DECLARE x NUMBER; BEGIN SELECT COUNT(*) INTO x FROM t; END;
---
begin execute immediate 'drop table t'; end;
---
CALL dbms_stats.gather_table_stats('HR', 'T')
---
EXEC dbms_output.put_line('x')
---
EXPLAIN PLAN FOR SELECT * FROM t
---
WITH FUNCTION f RETURN NUMBER IS BEGIN RETURN 1; END; SELECT f FROM dual
---
-- several statements
SELECT 1 FROM dual; DELETE FROM t
---
SELECT * FROM employees; DROP TABLE employees
---
SELECT a FROM t WHERE b = 'x'; COMMIT
---
SELECT 1 FROM dual; SELECT 2 FROM dual
---
-- comments hiding a second statement
SELECT 1 FROM dual -- harmless
; DELETE FROM t
---
SELECT 1 FROM dual /* ; */ ; DROP TABLE t
---
SELECT 1 FROM dual;/* hidden */DELETE FROM t
---
/* report */ SELECT 1 FROM dual; --
UPDATE t SET a = 1
---
-- FOR UPDATE and INTO
SELECT * FROM employees FOR UPDATE
---
SELECT * FROM employees FOR UPDATE NOWAIT
---
SELECT salary FROM employees FOR UPDATE OF salary SKIP LOCKED
---
SELECT a FROM t WHERE a IN (SELECT b FROM u FOR UPDATE)
---
SELECT a INTO x FROM t
---
SELECT a BULK COLLECT INTO x FROM t
---
-- database links
SELECT * FROM employees@remote
---
SELECT * FROM hr.employees@remote_db
---
SELECT * FROM t@link.example.com
---
SELECT * FROM t @link
---
SELECT * FROM "T"@"LINK"
---
SELECT a FROM t WHERE b IN (SELECT b FROM u@lnk)
---
SELECT remote_fn@lnk(1) FROM dual
---
-- WITH feeding a modification
WITH a AS (SELECT 1 x FROM dual) DELETE FROM t WHERE x IN (SELECT x FROM a)
---
INSERT INTO t WITH a AS (SELECT 1 x FROM dual) SELECT * FROM a
---
WITH a AS (SELECT id FROM t) UPDATE t SET x = 1 WHERE id IN (SELECT id FROM a)
---
-- user and package functions (may write through an autonomous transaction)
SELECT my_logger(a) FROM t
---
SELECT hr.pkg_admin.purge_all() FROM dual
---
SELECT pkg.upper(a) FROM t
---
SELECT dbms_random.value FROM dual
---
SELECT utl_http.request('http://example.com') FROM dual
---
SELECT * FROM TABLE(my_pipelined())
---
SELECT string_agg(a, ',') FROM t
---
SELECT "UPPER"(a) FROM t
---
SELECT rand() FROM dual
---
SELECT a FROM t WHERE my_check(a) = 1
---
SELECT xmltype('<a/>') FROM dual
---
-- sequences
SELECT seq_orders.NEXTVAL FROM dual
---
SELECT NEXT VALUE FOR seq FROM dual
---
-- not a query / unreadable
VALUES (1)
---
SELECT FROM WHERE
---
SELECT * FROM t MODEL DIMENSION BY (a) MEASURES (b) RULES (b[1] = 0)
---
;
