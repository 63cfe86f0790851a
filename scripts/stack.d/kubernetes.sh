# shellcheck shell=bash
# Kubernetes' own JSON schemas (strict: unknown fields refused) for tests/deploy.rs, which
# validates the built-in resources of deploy/kubernetes (Deployment, StatefulSet, Service, Job,
# ConfigMap, PodDisruptionBudget, HorizontalPodAutoscaler) against them. They come from the PyPI
# package kubernetes-validate (schemas generated from Kubernetes' OpenAPI), fetched with pip.
# Output: $CACHE/kubernetes-schemas-<package version>/<kubernetes version>-local-strict/*.json

K8S_VALIDATE_VERSION=1.37.0
K8S_SCHEMA_VERSION=v1.34.0   # deploy/ needs Kubernetes 1.30+ (native preStop sleep)

# Prints the schema directory, fetching it once.
k8s_schemas() {
  local home="$CACHE/kubernetes-schemas-$K8S_VALIDATE_VERSION" dir
  dir="$home/$K8S_SCHEMA_VERSION-local-strict"
  if [[ ! -f "$dir/_definitions.json" ]]; then
    say "fetching kubernetes-validate $K8S_VALIDATE_VERSION (Kubernetes $K8S_SCHEMA_VERSION schemas)" >&2
    rm -rf "$home.tmp"
    mkdir -p "$home.tmp"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$home.tmp" \
      "kubernetes-validate==$K8S_VALIDATE_VERSION" >&2 || die "kubernetes schemas: pip download failed"
    python3 - "$home.tmp" "$K8S_SCHEMA_VERSION-local-strict" <<'PY' || die "kubernetes schemas: unpacking failed"
import glob, os, sys, zipfile
home, wanted = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(home, "kubernetes_validate-*.whl"))[0]
prefix = "kubernetes_validate/kubernetes-json-schema/" + wanted + "/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            target = os.path.join(home, wanted, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as out:
                out.write(z.read(name))
os.remove(wheel)
PY
    rm -rf "$home"
    mv "$home.tmp" "$home"
  fi
  echo "$dir"
}
