"""Confluent's own Python client (confluent-kafka from PyPI) speaking Avro to the hub's topics.

The integration tests drive this script to prove interoperability with code no one on the project
wrote: the stock AvroSerializer and AvroDeserializer (fastavro underneath, writer schemas from the
registry) and the stock Producer and Consumer. JSON in, JSON out, one object per line:

  serialize    {"topic", "schema", "value", "record_strategy"?}  ->  {"hex"}
  deserialize  {"topic", "hex"}                                   ->  {"value", "schema_id"}
  produce      {"topic", "key", "headers", "schema", "value", "record_strategy"?, "register"?}
               ->  {"partition", "offset"}
  consume      {"topic", "count", "timeout_s"}  ->  one {"key", "headers", "value", "schema_id"} per
               record read (read_committed, every partition from its start), then {"done": n}
               with n the distinct records read and, when short of count, what the consumer saw
  register     {"subject", "schema"}  ->  {"id"}

Values use the hub's JSON shape (`core/src/contract.rs`): decimals as strings with exactly `scale`
fraction digits, timestamp-millis as RFC 3339 UTC with milliseconds, enums as symbols, unions as
the plain value or null, bytes as base64. The script converts that shape to the Python types the
serializer takes (Decimal, datetime, ...) by walking the schema, and back.
"""

import base64
import datetime
import decimal
import json
import os
import struct
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient, Schema, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def registry():
    # A request timeout, so a registry call that never answers is retried (the client's own
    # retries) instead of hanging the test: Apicurio under load was seen to leave one unanswered.
    return SchemaRegistryClient({"url": os.environ.get("HUB_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
                                 "timeout": 10, "max.retries": 5})


def names_of(schema, namespace=None, names=None):
    """Every named type of the schema by full name (and by short name), so references resolve."""
    names = {} if names is None else names
    if isinstance(schema, list):
        for branch in schema:
            names_of(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            full = schema["name"] if "." in schema["name"] or not ns else ns + "." + schema["name"]
            names[full] = schema
            names[schema["name"]] = schema
            namespace = ns
        if kind == "record":
            for field in schema["fields"]:
                names_of(field["type"], namespace, names)
        elif kind == "array":
            names_of(schema["items"], namespace, names)
        elif kind == "map":
            names_of(schema["values"], namespace, names)
        elif isinstance(kind, (dict, list)):
            names_of(kind, namespace, names)
    return names


def resolve(schema, names):
    while isinstance(schema, str) and schema not in PRIMITIVES:
        schema = names[schema]
    if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
        return resolve(schema["type"], names)
    if isinstance(schema, dict) and schema.get("type") in PRIMITIVES and "logicalType" not in schema:
        return schema["type"]
    return schema


def logical(schema):
    return schema.get("logicalType") if isinstance(schema, dict) else None


def to_python(schema, value, names):
    schema = resolve(schema, names)
    if isinstance(schema, list):
        if value is None:
            return None
        branch = next(b for b in schema if resolve(b, names) != "null")
        return to_python(branch, value, names)
    kind = logical(schema)
    if kind == "decimal":
        return decimal.Decimal(value)
    if kind == "timestamp-millis":
        if isinstance(value, int):
            return EPOCH + datetime.timedelta(milliseconds=value)
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind == "uuid":
        return value
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: to_python(f["type"], value.get(f["name"]), names) for f in schema["fields"] if f["name"] in value}
        if kind == "array":
            return [to_python(schema["items"], v, names) for v in value]
        if kind == "map":
            return {k: to_python(schema["values"], v, names) for k, v in value.items()}
        if kind == "fixed":
            return base64.b64decode(value)
        return value  # enum symbol
    if schema == "bytes":
        return base64.b64decode(value)
    return value


def millis_text(moment):
    millis = (moment - EPOCH) // datetime.timedelta(milliseconds=1)
    whole = EPOCH + datetime.timedelta(milliseconds=millis)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        whole.year, whole.month, whole.day, whole.hour, whole.minute, whole.second, millis % 1000)


def to_json(schema, value, names):
    schema = resolve(schema, names)
    if isinstance(schema, list):
        if value is None:
            return None
        branches = [b for b in schema if resolve(b, names) != "null"]
        return to_json(branches[0], value, names) if len(branches) == 1 else value
    kind = logical(schema)
    if kind == "decimal":
        scale = schema.get("scale", 0)
        return format(value.quantize(decimal.Decimal(1).scaleb(-scale)), "f")
    if kind == "timestamp-millis":
        return millis_text(value)
    if kind == "uuid":
        return str(value)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: to_json(f["type"], value[f["name"]], names) for f in schema["fields"]}
        if kind == "array":
            return [to_json(schema["items"], v, names) for v in value]
        if kind == "map":
            return {k: to_json(schema["values"], v, names) for k, v in value.items()}
        if kind == "fixed":
            return base64.b64encode(value).decode()
        return value
    if schema == "bytes":
        return base64.b64encode(value).decode()
    return value


SERIALIZERS = {}


def serializer(client, schema_text, record_strategy, register=True):
    # One serializer per schema and settings, held for the script's life as an application
    # holds its serializers (each caches its subject and registered id).
    key = (id(client), schema_text, bool(record_strategy), register)
    if key not in SERIALIZERS:
        conf = {"auto.register.schemas": register}
        if record_strategy:
            conf["subject.name.strategy"] = topic_record_subject_name_strategy
        SERIALIZERS[key] = AvroSerializer(client, schema_text, conf=conf)
    return SERIALIZERS[key]


def writer_json(client, schema_id):
    return json.loads(client.get_schema(schema_id).schema_str)


def serialize(client, request):
    schema = json.loads(request["schema"])
    names = names_of(schema)
    value = to_python(schema, request["value"], names)
    ser = serializer(client, request["schema"], request.get("record_strategy"), request.get("register", True))
    return ser(value, SerializationContext(request["topic"], MessageField.VALUE))


DESERIALIZERS = {}


def decoded(client, topic, data):
    # One deserializer per script, as an application holds one: each instance caches the
    # subject its name strategy looked up, and a fresh one per record asked the registry once per
    # record (a stalled registry request then cost the whole read its timeout).
    if id(client) not in DESERIALIZERS:
        DESERIALIZERS[id(client)] = AvroDeserializer(client)
    deserializer = DESERIALIZERS[id(client)]
    value = deserializer(data, SerializationContext(topic, MessageField.VALUE))
    schema_id = struct.unpack(">I", data[1:5])[0]
    schema = writer_json(client, schema_id)
    return {"value": to_json(schema, value, names_of(schema)), "schema_id": schema_id}


def main():
    mode = sys.argv[1]
    client = registry()
    bootstrap = os.environ.get("HUB_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    producer = None
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if mode == "serialize":
            out = {"hex": serialize(client, request).hex()}
        elif mode == "deserialize":
            out = decoded(client, request["topic"], bytes.fromhex(request["hex"]))
        elif mode == "register":
            out = {"id": client.register_schema(request["subject"], Schema(request["schema"], "AVRO"))}
        elif mode == "produce":
            if producer is None:
                producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                     "enable.idempotence": True, "acks": "all"})
            payload = serialize(client, request)
            result = {}

            def delivered(error, message, result=result):
                result["error"] = str(error) if error else None
                if message is not None and not error:
                    result["partition"], result["offset"] = message.partition(), message.offset()

            headers = [(k, v.encode()) for k, v in request.get("headers", {}).items()]
            producer.produce(request["topic"], key=request["key"].encode(), value=payload, headers=headers,
                             on_delivery=delivered)
            producer.flush(30)
            if result.get("error") or "offset" not in result:
                raise SystemExit("produce failed: %s" % result)
            out = result
        elif mode == "consume":
            started = time.time()
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-interop-" + os.urandom(4).hex(),
                                 "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                 "enable.auto.commit": False})
            # Every partition assigned from its start, as a data team rebuilding a table reads a
            # compacted topic: no group coordination between the test and the records.
            metadata = consumer.list_topics(request["topic"], timeout=10).topics[request["topic"]]
            partitions = sorted(metadata.partitions)
            consumer.assign([TopicPartition(request["topic"], p, OFFSET_BEGINNING) for p in partitions])
            assigned = [[round(time.time() - started, 2), partitions]]
            read, errors, per_partition, repeated = 0, [], {}, 0
            seen = set()
            deadline = started + request.get("timeout_s", 60)
            while read < request["count"] and time.time() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    errors.append([round(time.time() - started, 2), str(message.error())])
                    continue
                if (message.partition(), message.offset()) in seen:
                    repeated += 1
                    continue
                seen.add((message.partition(), message.offset()))
                record = {"key": (message.key() or b"").decode(),
                          "headers": {k: (v or b"").decode("utf-8", "replace") for k, v in (message.headers() or [])},
                          "partition": message.partition(), "offset": message.offset()}
                if message.value() is not None:
                    record.update(decoded(client, request["topic"], message.value()))
                print(json.dumps(record), flush=True)
                per_partition[message.partition()] = per_partition.get(message.partition(), 0) + 1
                read += 1
            # What the consumer saw, for the test's message when it read fewer than asked.
            out = {"done": read, "seconds": round(time.time() - started, 2), "assigned": assigned,
                   "errors": errors[:20], "per_partition": per_partition, "repeated": repeated}
            if read < request["count"]:
                positions = consumer.position(consumer.assignment())
                out["positions"] = {p.partition: p.offset for p in positions}
                out["watermarks"] = {p.partition: consumer.get_watermark_offsets(p, timeout=5)
                                     for p in consumer.assignment()}
            consumer.close()
        else:
            raise SystemExit("unknown mode " + mode)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
