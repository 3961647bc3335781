# Starts the machine's Debian PostgreSQL 15 and creates a test database, then
# exports STANCH_TEST_POSTGRES for the runner's tests. Sourced by .ci/run and
# by `make test` (through scripts/test-env).
start_postgres() {
  if [ -n "${STANCH_TEST_POSTGRES:-}" ]; then
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "postgres: pg_ctlcluster not found; installing postgresql" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(pg_lsclusters -h | awk 'NR==1{print $1}')
  if [ -z "$version" ]; then
    echo "postgres: no cluster found" >&2
    return 1
  fi
  if ! pg_lsclusters -h | awk 'NR==1{print $4}' | grep -q online; then
    pg_ctlcluster "$version" main start
  fi
  for _ in $(seq 1 50); do
    if su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  su postgres -c "psql -qAt" <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stanch') THEN
    CREATE ROLE stanch LOGIN PASSWORD 'stanch' CREATEDB;
  END IF;
END $$;
SQL
  if ! su postgres -c "psql -qAtc \"select 1 from pg_database where datname='stanch_test'\"" | grep -q 1; then
    su postgres -c "createdb -O stanch stanch_test"
  fi
  export STANCH_TEST_POSTGRES="postgres://stanch:stanch@127.0.0.1:5432/stanch_test?sslmode=disable"
}
