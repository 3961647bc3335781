# Installs verdaccio, an independent npm registry, at a pinned version and puts
# it on PATH: actions/npm's verdaccio test revokes tokens against it (without
# it that test skips). Sourced by .ci/run; a developer can source it too:
#   source .ci/verdaccio.sh && install_verdaccio
# verdaccio 6.8.0 is the last 6.x that runs on Node 20 (6.9 wants Node 22).
# Installed into its own folder rather than with npm -g, so that the override
# applies: verdaccio-audit asks for node-fetch by the dist-tag "cjs", which not
# every registry mirror carries; 2.7.0 is the version that tag names.
VERDACCIO_VERSION=6.8.0

install_verdaccio() {
  local dir="$HOME/.cache/stanch/verdaccio-$VERDACCIO_VERSION"
  if [ "$("$dir/node_modules/.bin/verdaccio" --version 2>/dev/null)" != "v$VERDACCIO_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "verdaccio: npm is not on PATH; the machine image should provide Node.js and npm" >&2
      return 1
    fi
    mkdir -p "$dir"
    cat >"$dir/package.json" <<JSON
{"private": true, "dependencies": {"verdaccio": "$VERDACCIO_VERSION"}, "overrides": {"node-fetch": "2.7.0"}}
JSON
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error) >&2 || return 1
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
  verdaccio --version
}
