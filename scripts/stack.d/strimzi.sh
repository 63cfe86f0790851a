# shellcheck shell=bash
# Strimzi's CRDs for tests/deploy.rs, which validates deploy/strimzi/ and the Strimzi resources of
# deploy/ against their OpenAPI schemas. Nothing runs: Strimzi's API model (io.strimzi:api) and its
# CRD generator (io.strimzi:crd-generator) come from Maven Central (scripts/stack.d/strimzi/pom.xml)
# and generate the CRDs exactly as Strimzi's own build does. Needs Java 21+ (the generator's
# class files), found like Apicurio's.
# Output: $CACHE/strimzi-<version>/crds/{kafka,kafkanodepool,kafkatopic,kafkauser}.yaml

STRIMZI_POM="$STACK_D/strimzi/pom.xml"

strimzi_version() { pom_property "$STRIMZI_POM" strimzi.version; }
strimzi_home() { echo "$CACHE/strimzi-$(strimzi_version)"; }

# Prints the CRD directory, generating it once per pom hash.
strimzi_crds() {
  local home crds java sum model=io.strimzi.api.kafka.model
  home="$(strimzi_home)"
  crds="$home/crds"
  sum="$(sha256sum "$STRIMZI_POM" | cut -c1-16)"
  if [[ ! -f "$crds/.generated" || "$(<"$crds/.generated")" != "$sum" ]]; then
    install_jars "strimzi $(strimzi_version) API model and CRD generator" "$STRIMZI_POM" "$home" >&2
    java="$(registry_java)"
    rm -rf "$crds.tmp"
    mkdir -p "$crds.tmp"
    "$java" -cp "$home/libs/*" io.strimzi.crdgenerator.CrdGenerator \
      --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
      "$model.kafka.Kafka=$crds.tmp/kafka.yaml" \
      "$model.nodepool.KafkaNodePool=$crds.tmp/kafkanodepool.yaml" \
      "$model.topic.KafkaTopic=$crds.tmp/kafkatopic.yaml" \
      "$model.user.KafkaUser=$crds.tmp/kafkauser.yaml" >&2 ||
      die "strimzi: the CRD generator failed"
    echo "$sum" >"$crds.tmp/.generated"
    rm -rf "$crds"
    mv "$crds.tmp" "$crds"
  fi
  echo "$crds"
}
