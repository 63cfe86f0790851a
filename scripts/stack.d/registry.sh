# shellcheck shell=bash
# Apicurio Registry 3.x for scripts/stack: in-memory (H2) storage, no auth, Confluent-compatible API at
# /apis/ccompat/v7. Nothing survives a restart. Download: io.apicurio:apicurio-registry-app:V:tar.gz:all
# from Maven Central (~160 MB), unpacked into the cache (3.3.x: quarkus-run.jar at the archive root).
# Apicurio 3.1+ is compiled for Java 21 (class file 65): it runs on the newest JDK >= 21 found under
# /usr/lib/jvm (Temurin 25 on our machines), or STACK_REGISTRY_JAVA_HOME.

REGISTRY_VERSION="${STACK_REGISTRY_VERSION:-3.3.3}"
# Confluent-like defaults: global compatibility BACKWARD (Apicurio's own default is none), and a
# reformatted copy of a subject's schema is found as the same schema (canonical hash), not a new version.
REGISTRY_COMPATIBILITY="${STACK_REGISTRY_COMPATIBILITY:-BACKWARD}"

registry_version() { echo "$REGISTRY_VERSION"; }
registry_home() { echo "$CACHE/apicurio-registry-$REGISTRY_VERSION"; }
registry_addr() { echo "http://$HOST:$REGISTRY_PORT"; }
registry_ports() { echo "$REGISTRY_PORT $REGISTRY_MGMT_PORT"; }
registry_timeout() { echo 150; }
registry_prepare() { registry_java >/dev/null; }

# The java executable for Apicurio: STACK_REGISTRY_JAVA_HOME, else the newest JDK >= 21 under /usr/lib/jvm.
registry_java() {
  if [[ -n "${STACK_REGISTRY_JAVA_HOME:-}" ]]; then echo "$STACK_REGISTRY_JAVA_HOME/bin/java"; return; fi
  local j v best="" best_v=0
  for j in /usr/lib/jvm/*/bin/java; do
    [[ -x "$j" && ! -L "$(dirname "$(dirname "$j")")" ]] || continue
    v="$(java_major "$j")"
    [[ "$v" =~ ^[0-9]+$ ]] && ((v >= 21 && v > best_v)) && { best="$j"; best_v="$v"; }
  done
  [[ -n "$best" ]] || die "registry: Apicurio $REGISTRY_VERSION needs Java 21+; none under /usr/lib/jvm (set STACK_REGISTRY_JAVA_HOME)"
  echo "$best"
}

registry_install() {
  local dest tmp
  dest="$(registry_home)"
  [[ -f "$dest/.installed" ]] && return 0
  say "installing apicurio-registry $REGISTRY_VERSION into $dest"
  tmp="$dest.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # shellcheck disable=SC2086 # STACK_MVN_ARGS is a list of words on purpose
  mvn -B -q -Dstyle.color=never ${STACK_MVN_ARGS:-} dependency:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" -DoutputDirectory="$tmp"
  tar -xzf "$tmp"/apicurio-registry-app-*.tar.gz -C "$tmp"
  rm -f "$tmp"/apicurio-registry-app-*.tar.gz
  [[ -f "$tmp/quarkus-run.jar" ]] || die "registry: no quarkus-run.jar at the archive root (layout changed?)"
  touch "$tmp/.installed"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

registry_ready() {
  local body
  body="$(curl -fsS --max-time 3 "$(registry_addr)/apis/ccompat/v7/subjects" 2>/dev/null)" || return 1
  [[ "$body" == \[* ]]
}

registry_exec() {
  local dir java
  dir="$(statedir registry)"
  java="$(registry_java)"
  cd "$(registry_home)" || exit 1
  exec "$java" -Dinterchange.stack=registry -Xms128m -Xmx512m \
    -Dquarkus.http.host="$HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host="$HOST" -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
    -Dapicurio.storage.snapshot.location="$dir" -Dapicurio.import.work-dir="$dir" \
    -Djava.io.tmpdir="$dir" \
    -Dapicurio.rules.global.compatibility="$REGISTRY_COMPATIBILITY" \
    -Dapicurio.ccompat.use-canonical-hash=true \
    -jar quarkus-run.jar
}
