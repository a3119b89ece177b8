"""`ensure_monthly_partitions`, the function migration 0001 creates and 0003 re-creates with row
security for new partitions: its SQL lives here so that 0003 reads a stable text rather than
executing 0001's current file. Like `migrations/rls.py`, shipped migrations depend on it: it must
keep emitting the same SQL (`tests/schema/test_catalog.py`)."""

from __future__ import annotations

# Monthly partitions are UTC months named <parent>_YYYY_MM. Rows that already landed in the default
# partition for a month would make CREATE ... PARTITION OF fail, so such a month is built beside the
# parent, its rows are moved over, and it is attached. Safe to call again: existing months are skipped.
ENSURE_MONTHLY_PARTITIONS = """
CREATE FUNCTION ensure_monthly_partitions(parent regclass, from_month date, months integer)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    parent_schema name;
    parent_table name;
    key_column name;
    default_partition regclass;
    month_start date;
    lower_bound text;
    upper_bound text;
    partition_name text;
    created integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO parent_schema, parent_table
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = parent;

    SELECT a.attname, nullif(p.partdefid, 0)::regclass INTO key_column, default_partition
    FROM pg_partitioned_table AS p
    JOIN pg_attribute AS a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = parent AND p.partstrat = 'r' AND p.partnatts = 1;
    IF key_column IS NULL THEN
        RAISE EXCEPTION '% is not partitioned by range on one column', parent;
    END IF;

    -- Self-conflicting but compatible with inserts: concurrent callers queue, writers do not.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);

    FOR i IN 0 .. months - 1 LOOP
        month_start := (date_trunc('month', from_month) + make_interval(months => i))::date;
        lower_bound := to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00';
        upper_bound := to_char(month_start + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00';
        partition_name := parent_table || '_' || to_char(month_start, 'YYYY_MM');
        CONTINUE WHEN to_regclass(format('%I.%I', parent_schema, partition_name)) IS NOT NULL;

        IF default_partition IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           parent_schema, partition_name, parent, lower_bound, upper_bound);
        ELSE
            EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS)',
                           parent_schema, partition_name, parent);
            EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *) '
                           'INSERT INTO %I.%I SELECT * FROM moved',
                           default_partition, key_column, lower_bound, key_column, upper_bound,
                           parent_schema, partition_name);
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                           parent, parent_schema, partition_name, lower_bound, upper_bound);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$
"""
