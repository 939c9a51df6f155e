-- The proxy's own PostgreSQL role, scalemesh_proxy: it may read every Scale Mesh table and
-- write none (README "Production"). Not a Kubernetes resource: run it once with psql as the
-- owner of the tables (the role `scalemesh migrate` connects as), before or after migrating:
--
--   kubectl -n scalemesh exec -i postgres-0 -- psql -v ON_ERROR_STOP=1 -U scalemesh \
--     -d scalemesh -v proxy_password="$PROXY_DB_PASSWORD" < deploy/k8s/proxy-db-role.sql
--
-- Running it again only sets the password again. Tables created by later migrations are
-- readable too: the default privileges below cover every table the owner creates.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scalemesh_proxy') THEN
        CREATE ROLE scalemesh_proxy LOGIN;
    END IF;
END
$$;
ALTER ROLE scalemesh_proxy WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'proxy_password';
-- Even a statement that slipped through would run read-only.
ALTER ROLE scalemesh_proxy SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO scalemesh_proxy;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO scalemesh_proxy;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO scalemesh_proxy;
-- Before PostgreSQL 15 every role may create objects in schema public; the proxy's could plant a
-- function there that the API's queries call (CVE-2018-1058). Refuse until it cannot.
DO $$
BEGIN
    IF has_schema_privilege('scalemesh_proxy', 'public', 'CREATE') THEN
        RAISE EXCEPTION 'scalemesh_proxy may create objects in schema public: take the CREATE '
            'privilege on it from PUBLIC (leave it to the role `scalemesh migrate` connects as), '
            'then run this file again';
    END IF;
END
$$;
