-- Read-only queries the SQL console must run. Cases are separated by a line holding only "---".
SELECT * FROM dual
---
SELECT 1 FROM dual;
---
select sysdate from dual
---
SELECT dbusername, action_name, event_timestamp FROM unified_audit_trail WHERE event_timestamp > SYSTIMESTAMP - INTERVAL '1' DAY
---
SELECT e.last_name, d.department_name FROM employees e JOIN departments d ON e.department_id = d.department_id
---
SELECT e.last_name, d.department_name FROM employees e LEFT OUTER JOIN departments d ON e.department_id = d.department_id WHERE d.location_id = 1700
---
SELECT e.last_name, d.department_name FROM employees e, departments d WHERE e.department_id = d.department_id(+)
---
SELECT a.x, b.y FROM a FULL OUTER JOIN b USING (id) CROSS JOIN c
---
SELECT COUNT(*), dbusername FROM unified_audit_trail GROUP BY dbusername HAVING COUNT(*) > 10 ORDER BY 1 DESC
---
SELECT ROW_NUMBER() OVER (PARTITION BY dbusername ORDER BY event_timestamp DESC) rn, dbusername FROM unified_audit_trail
---
SELECT LAG(a) OVER (ORDER BY b), LEAD(a, 1, 0) OVER (ORDER BY b), RANK() OVER (ORDER BY a), DENSE_RANK() OVER (ORDER BY a), NTILE(4) OVER (ORDER BY a) FROM t
---
SELECT FIRST_VALUE(a) OVER (ORDER BY b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), SUM(a) OVER (PARTITION BY c) FROM t
---
SELECT department_id, MAX(salary) KEEP (DENSE_RANK FIRST ORDER BY hire_date) FROM employees GROUP BY department_id
---
SELECT RATIO_TO_REPORT(salary) OVER () FROM employees
---
WITH recent AS (SELECT * FROM unified_audit_trail WHERE event_timestamp > SYSDATE - 7) SELECT dbusername, COUNT(*) FROM recent GROUP BY dbusername
---
WITH a AS (SELECT 1 x FROM dual), b AS (SELECT x + 1 y FROM a) SELECT * FROM a, b
---
WITH x (a, b) AS (SELECT 1, 2 FROM dual) SELECT * FROM x
---
WITH t1 AS (SELECT 1 n FROM dual UNION ALL SELECT 2 FROM dual) SELECT n FROM t1 MINUS SELECT 2 FROM dual
---
SELECT a FROM t1 UNION SELECT a FROM t2
---
SELECT a FROM t1 UNION ALL SELECT a FROM t2 UNION ALL SELECT a FROM t3
---
SELECT a FROM t1 INTERSECT SELECT a FROM t2
---
SELECT a FROM t1 MINUS SELECT a FROM t2
---
(SELECT a FROM t1) UNION (SELECT b FROM t2)
---
SELECT employee_id, last_name, LEVEL FROM employees START WITH manager_id IS NULL CONNECT BY PRIOR employee_id = manager_id
---
SELECT SYS_CONNECT_BY_PATH(last_name, '/'), CONNECT_BY_ROOT last_name, CONNECT_BY_ISLEAF FROM employees START WITH manager_id IS NULL CONNECT BY NOCYCLE PRIOR employee_id = manager_id ORDER SIBLINGS BY last_name
---
SELECT LEVEL FROM dual CONNECT BY LEVEL <= 10
---
SELECT * FROM unified_audit_trail ORDER BY event_timestamp DESC FETCH FIRST 10 ROWS ONLY
---
SELECT a FROM t OFFSET 10 ROWS FETCH NEXT 5 ROWS ONLY
---
SELECT a FROM t ORDER BY a FETCH FIRST 5 PERCENT ROWS WITH TIES
---
SELECT * FROM (SELECT a FROM t ORDER BY a) WHERE ROWNUM <= 10
---
SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a) AND b NOT IN (SELECT b FROM v)
---
SELECT a FROM t WHERE b > ALL (SELECT b FROM u) OR c = ANY (1, 2, 3)
---
SELECT CASE WHEN return_code = 0 THEN 'OK' ELSE 'ECHEC' END statut, DECODE(action_name, 'LOGON', 1, 0) FROM unified_audit_trail
---
SELECT NVL(a, 0), NVL2(a, 1, 2), NULLIF(a, b), COALESCE(a, b, c), GREATEST(a, b), LEAST(a, b) FROM t
---
SELECT TO_CHAR(event_timestamp, 'YYYY-MM-DD HH24'), TRUNC(event_timestamp, 'HH'), EXTRACT(HOUR FROM CAST(event_timestamp AS TIMESTAMP)) FROM unified_audit_trail
---
SELECT TO_DATE('2024-01-31', 'YYYY-MM-DD'), ADD_MONTHS(SYSDATE, -1), MONTHS_BETWEEN(SYSDATE, hire_date), LAST_DAY(SYSDATE), NEXT_DAY(SYSDATE, 'MONDAY') FROM employees
---
SELECT SUBSTR(a, 1, 2), INSTR(a, 'x'), LENGTH(a), UPPER(a), LOWER(a), INITCAP(a), LPAD(a, 3), RPAD(a, 3), REPLACE(a, 'x', 'y'), TRIM(a), a || b FROM t
---
SELECT * FROM unified_audit_trail WHERE REGEXP_LIKE(sql_text, 'DROP|TRUNCATE', 'i')
---
SELECT REGEXP_SUBSTR(a, '[0-9]+'), REGEXP_REPLACE(a, 'x', 'y'), REGEXP_COUNT(a, 'x') FROM t
---
SELECT ROUND(AVG(salary), 2), MEDIAN(salary), STDDEV(salary), PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY salary) FROM employees
---
SELECT LISTAGG(last_name, ', ') WITHIN GROUP (ORDER BY last_name) FROM employees GROUP BY department_id
---
SELECT department_id, job_id, SUM(salary), GROUPING(job_id) FROM employees GROUP BY ROLLUP (department_id, job_id)
---
SELECT a, b, COUNT(*) FROM t GROUP BY CUBE (a, b)
---
SELECT * FROM (SELECT dbusername, action_name FROM unified_audit_trail) PIVOT (COUNT(*) FOR action_name IN ('SELECT' AS s, 'UPDATE' AS u))
---
SELECT * FROM employees AS OF TIMESTAMP SYSTIMESTAMP - INTERVAL '10' MINUTE
---
SELECT * FROM t SAMPLE (10)
---
SELECT /*+ INDEX(t idx_t_a) */ a FROM t WHERE a = 1
---
SELECT * FROM unified_audit_trail WHERE dbusername = :username AND event_timestamp > :since
---
SELECT * FROM employees WHERE employee_id = :1
---
SELECT SYS_CONTEXT('USERENV', 'SESSION_USER'), USER FROM dual
---
SELECT q'[it's]' AS txt, 'a@b.example' AS email FROM dual
---
SELECT JSON_VALUE(doc, '$.a'), JSON_QUERY(doc, '$.b') FROM docs
---
SELECT DATE '2024-01-01', TIMESTAMP '2024-01-01 10:00:00' FROM dual
---
SELECT ORA_HASH(a), DUMP(a), TO_NUMBER('12'), CHR(65), ASCII('A'), ABS(-1), MOD(5, 2), POWER(2, 3), SQRT(4), CEIL(1.2), FLOOR(1.8) FROM dual
---
-- a comment before the query
SELECT 1 FROM dual -- and after it
---
SELECT * FROM t WHERE note LIKE '%; DELETE FROM t%'
---
SELECT a FROM t WITH READ ONLY
