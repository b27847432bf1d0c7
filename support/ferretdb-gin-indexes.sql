-- Equality indexes that FerretDB (PostgreSQL handler) can use.
--
-- FerretDB 1.x stores each document as one jsonb column, `_jsonb`, and translates a MongoDB
-- equality filter on a top-level field into a containment test, `_jsonb->'field' @> value`.
-- For every MongoDB index it creates a btree index on `(_jsonb->'field')`, and a btree index
-- cannot answer `@>`: without help every find, even by `_id`, reads the whole table.
--
-- This event trigger runs after each CREATE INDEX in the database it is installed in and,
-- for each key of a new btree index that is a top-level field of `_jsonb`, adds a GIN index
-- (`jsonb_path_ops`, which serves `@>`) on the same expression. `fastupdate = off` makes new
-- entries go straight into the index instead of a pending list, so a read right after a write
-- costs what any read costs. Install it before FerretDB creates collections; it is idempotent.
--
-- Only the local development and test substrate needs this: MongoDB serves the same indexes
-- natively.

CREATE OR REPLACE FUNCTION simplepro_add_gin_for_btree() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  created record;
  key_no int;
  key_expr text;
  gin_name text;
BEGIN
  FOR created IN
    SELECT ix.indexrelid AS index_oid, ix.indnkeyatts AS key_count,
           tbl.relname AS table_name, ns.nspname AS schema_name, ixc.relname AS index_name
      FROM pg_event_trigger_ddl_commands() AS ddl
      JOIN pg_index ix ON ix.indexrelid = ddl.objid
      JOIN pg_class ixc ON ixc.oid = ix.indexrelid
      JOIN pg_am am ON am.oid = ixc.relam AND am.amname = 'btree'
      JOIN pg_class tbl ON tbl.oid = ix.indrelid
      JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
     WHERE ddl.command_tag = 'CREATE INDEX'
  LOOP
    FOR key_no IN 1 .. created.key_count LOOP
      -- the key's expression as PostgreSQL prints it, e.g. ((_jsonb -> 'customer_id'::text))
      key_expr := pg_get_indexdef(created.index_oid, key_no, false);
      CONTINUE WHEN key_expr !~ '^\(+_jsonb -> ''[^'']+''::text\)+$';
      gin_name := left(created.index_name, 40) || '_gin_' || key_no || '_' || left(md5(key_expr), 8);
      EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin (%s jsonb_path_ops) WITH (fastupdate = off)',
        gin_name, created.schema_name, created.table_name, key_expr);
    END LOOP;
  END LOOP;
END
$fn$;

DROP EVENT TRIGGER IF EXISTS simplepro_add_gin_for_btree;
CREATE EVENT TRIGGER simplepro_add_gin_for_btree ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX')
  EXECUTE FUNCTION simplepro_add_gin_for_btree();
