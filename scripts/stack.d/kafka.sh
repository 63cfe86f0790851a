# shellcheck shell=bash
# Apache Kafka 4.x for scripts/stack: KRaft, one node that is both broker and controller.
# Jars: scripts/stack.d/kafka/pom.xml (kafka_2.13 + kafka-tools + the log4j SLF4J binding).
# State: $STACK_DIR/kafka/{server.properties,log4j2.properties,data/}. Data survives down/up; `reset` wipes it.

KAFKA_POM="$STACK_D/kafka/pom.xml"
KAFKA_CLUSTER_ID=aW50ZXJjaGFuZ2Utc3RhY2 # any fixed 22-char base64url UUID

kafka_version() { pom_property "$KAFKA_POM" kafka.version; }
kafka_home() { echo "$CACHE/kafka-$(kafka_version)"; }
kafka_install() { install_jars "kafka $(kafka_version)" "$KAFKA_POM" "$(kafka_home)"; }
# shellcheck disable=SC2153 # KAFKA_PORT is set in scripts/stack
kafka_addr() { echo "$HOST:$KAFKA_PORT"; }
kafka_ports() { echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT"; }
kafka_timeout() { echo 120; }
kafka_ready() { python3 "$STACK_D/probe.py" kafka "$(kafka_addr)" >/dev/null 2>&1; }

kafka_prepare() {
  local dir
  dir="$(statedir kafka)"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
# Written by scripts/stack on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.enable=true
log.cleaner.backoff.ms=200
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
# Broker log to stdout (scripts/stack sends it to $STACK_DIR/logs/kafka.log).
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
# The full config dumps (~400 lines each, several per start)
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = WARN
EOF
}

# Runs in the service's own process (scripts/stack __exec kafka): format storage once, then exec the broker.
kafka_exec() {
  local dir cp
  dir="$(statedir kafka)"
  cp="$(kafka_home)/libs/*"
  local jvm=(-Dinterchange.stack=kafka -Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true -Dkafka.logs.dir="$dir/logs"
    -Dlog4j2.configurationFile="$dir/log4j2.properties")
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    "$JAVA" "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" \
      -c "$dir/server.properties" -g
  fi
  exec "$JAVA" "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
}

# Runs a Kafka CLI class with the broker's classpath, e.g.
#   kafka_cli org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
kafka_cli() {
  local conf
  conf="$(statedir kafka)/tools-log4j2.properties"
  if [[ ! -f "$conf" ]]; then
    mkdir -p "$(dirname "$conf")"
    printf '%s\n' 'status = warn' 'appender.err.type = Console' 'appender.err.name = STDERR' \
      'appender.err.target = SYSTEM_ERR' 'appender.err.layout.type = PatternLayout' \
      'appender.err.layout.pattern = [%d] %p %m (%c)%n' 'rootLogger.level = WARN' \
      'rootLogger.appenderRef.err.ref = STDERR' >"$conf"
  fi
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$conf" -cp "$(kafka_home)/libs/*" "$@"
}
