# shellcheck shell=bash
# Apache Cassandra 5.0.x for scripts/stack: one node, CQL on 127.0.0.1, 1 GiB heap, Java 17.
# Jars: scripts/stack.d/cassandra/pom.xml (cassandra-all and its runtime dependencies).
# State: $STACK_DIR/cassandra/{conf/,data/,logs/}. Data survives down/up; `reset` wipes it.
# JMX (nodetool) listens on 127.0.0.1:$STACK_CASSANDRA_JMX_PORT only (Cassandra's "local" JMX mode).

CASSANDRA_POM="$STACK_D/cassandra/pom.xml"

cassandra_version() { pom_property "$CASSANDRA_POM" cassandra.version; }
cassandra_home() { echo "$CACHE/cassandra-$(cassandra_version)"; }
cassandra_install() { install_jars "cassandra $(cassandra_version)" "$CASSANDRA_POM" "$(cassandra_home)"; }
cassandra_addr() { echo "$HOST:$CQL_PORT"; }
cassandra_ports() { echo "$CQL_PORT $CASSANDRA_STORAGE_PORT $CASSANDRA_JMX_PORT"; }
cassandra_timeout() { echo 300; }
cassandra_ready() { python3 "$STACK_D/probe.py" cql "$(cassandra_addr)" >/dev/null 2>&1; }

cassandra_prepare() {
  local dir
  dir="$(statedir cassandra)"
  mkdir -p "$dir/conf/triggers" "$dir/data" "$dir/logs"
  cat >"$dir/conf/cassandra.yaml" <<EOF
# Written by scripts/stack on each start: a single test node, everything on $HOST.
cluster_name: interchange-stack
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $HOST
rpc_address: $HOST
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CQL_PORT
start_native_transport: true
data_file_directories: [$dir/data/data]
commitlog_directory: $dir/data/commitlog
saved_caches_directory: $dir/data/saved_caches
hints_directory: $dir/data/hints
cdc_raw_directory: $dir/data/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
storage_compatibility_mode: NONE
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
concurrent_compactors: 1
auto_snapshot: false
snapshot_before_compaction: false
EOF
  cat >"$dir/conf/logback.xml" <<'EOF'
<!-- Written by scripts/stack: INFO to stdout, which goes to $STACK_DIR/logs/cassandra.log. -->
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
}

# Runs in the service's own process (scripts/stack __exec cassandra). Flags from Cassandra's
# conf/jvm-server.options and conf/jvm17-server.options.
cassandra_exec() {
  local dir libs jamm
  dir="$(statedir cassandra)"
  libs="$(cassandra_home)/libs"
  jamm="$(compgen -G "$libs/jamm-*.jar" | head -n1)"
  local opens=() m
  for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
    java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal java.base/sun.nio.ch \
    java.base/java.io java.base/java.lang.reflect jdk.compiler/com.sun.tools.javac java.base/java.lang \
    java.base/java.util java.base/java.nio; do
    opens+=(--add-opens "$m=ALL-UNNAMED")
  done
  for m in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi \
    java.rmi/sun.rmi.registry java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref \
    jdk.unsupported/sun.misc jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
    opens+=(--add-exports "$m=ALL-UNNAMED")
  done
  exec "$JAVA" -Dinterchange.stack=cassandra -Xms1g -Xmx1g -Xss256k \
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m \
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70 \
    -XX:+UseThreadPriorities -XX:+PerfDisableSharedMem -XX:+CrashOnOutOfMemoryError \
    -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true -Dio.netty.tryReflectionSetAccessible=true \
    -Dchronicle.analytics.disable=true \
    "${opens[@]}" -javaagent:"$jamm" \
    -Dcassandra-foreground=yes -Dcassandra.config="file://$dir/conf/cassandra.yaml" \
    -Dcassandra.storagedir="$dir/data" -Dcassandra.logdir="$dir/logs" \
    -Dlogback.configurationFile="$dir/conf/logback.xml" \
    -Dcassandra.jmx.local.port="$CASSANDRA_JMX_PORT" -Dcom.sun.management.jmxremote.rmi.port="$CASSANDRA_JMX_PORT" \
    -Dcassandra.triggers_dir="$dir/conf/triggers" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.unsafesystem=true \
    -Dcassandra.initial_token=0 -Dcassandra.superuser_setup_delay_ms=0 \
    -cp "$dir/conf:$libs/*" org.apache.cassandra.service.CassandraDaemon
}
