"""Shared constants and helpers for the deployment-file tests under tests/deploy/.

The KubeRay manifests under k8s/ (parsing, KubeRay CRD field lists, Kubernetes schemas,
kustomize), the project pin they must follow, and the credential patterns the scans use.
Dockerfile / .dockerignore helpers live in docker_support.py.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pytest brings tomli on 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
SECRET_EXAMPLE = "secret-example.yaml"
PLACEHOLDER = "REPLACE_ME"

# Kubernetes releases the built-in kinds are validated against: the oldest we document
# (CronJob.spec.timeZone is GA since 1.27) and the newest kubernetes-validate knows.
K8S_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
BUILTIN_KINDS = {
    "ConfigMap",
    "CronJob",
    "Namespace",
    "Role",
    "RoleBinding",
    "Secret",
    "ServiceAccount",
}

# ---------------------------------------------------------------------------------------
# KubeRay ray.io/v1 field lists. Source: ray-project/kuberay,
#   ray-operator/config/crd/bases/ray.io_rayjobs.yaml     (RayJob, RayCluster spec inside it)
#   ray-operator/config/crd/bases/ray.io_raycronjobs.yaml (RayCronJob)
# generated from ray-operator/apis/ray/v1/{rayjob,raycluster,raycronjob}_types.go.
# The sets are the fields of tag v1.5.1, the oldest operator the RayJob manifests support
# (rayClusterSpec.authOptions arrived in 1.5.1); *_SINCE lists fields added later, checked
# against tags v1.6.0 and v1.7.0. Pod templates are core/v1 PodTemplateSpecs and are checked
# against the Kubernetes schema instead.
# ---------------------------------------------------------------------------------------
MIN_KUBERAY_RAYJOB = "1.5.1"
MIN_KUBERAY_RAYCRONJOB = "1.6.0"  # RayCronJob is new (alpha) in 1.6.0, feature gate RayCronJob

RAYJOB_SPEC = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "clusterSelector",
    "deletionStrategy",
    "entrypoint",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "entrypointResources",
    "jobId",
    "managedBy",
    "metadata",
    "rayClusterSpec",
    "runtimeEnvYAML",
    "shutdownAfterJobFinishes",
    "submissionMode",
    "submitterConfig",
    "submitterPodTemplate",
    "suspend",
    "ttlSecondsAfterFinished",
}
RAYJOB_SPEC_SINCE = {"preRunningDeadlineSeconds": "1.6.0"}
RAYCLUSTER_SPEC = {
    "authOptions",
    "autoscalerOptions",
    "enableInTreeAutoscaling",
    "gcsFaultToleranceOptions",
    "headGroupSpec",
    "headServiceAnnotations",
    "managedBy",
    "rayVersion",
    "suspend",
    "workerGroupSpecs",
}
RAYCLUSTER_SPEC_SINCE = {
    "upgradeStrategy": "1.6.0",
    "historyServerOptions": "1.7.0",
    "networkPolicy": "1.7.0",
    "tlsOptions": "1.7.0",
}
HEAD_GROUP_SPEC = {
    "enableIngress",
    "headService",
    "labels",
    "rayStartParams",
    "resources",
    "serviceType",
    "template",
}
HEAD_GROUP_SPEC_SINCE = {"ingressOptions": "1.7.0"}
WORKER_GROUP_SPEC = {
    "groupName",
    "idleTimeoutSeconds",
    "labels",
    "maxReplicas",
    "minReplicas",
    "numOfHosts",
    "rayStartParams",
    "replicas",
    "resources",
    "scaleStrategy",
    "suspend",
    "template",
}
WORKER_GROUP_SPEC_SINCE = {"priority": "1.7.0"}
WORKER_GROUP_REQUIRED = {"groupName", "maxReplicas", "minReplicas", "template"}
AUTOSCALER_OPTIONS = {
    "env",
    "envFrom",
    "idleTimeoutSeconds",
    "image",
    "imagePullPolicy",
    "resources",
    "securityContext",
    "upscalingMode",
    "version",
    "volumeMounts",
}
AUTOSCALER_OPTIONS_SINCE = {"args": "1.7.0", "command": "1.7.0"}
AUTH_OPTIONS = {"mode"}
AUTH_OPTIONS_SINCE = {"enableK8sTokenAuth": "1.6.0", "secretName": "1.6.0"}
RAYCRONJOB_SPEC = {"jobTemplate", "schedule", "suspend"}
RAYCRONJOB_SPEC_SINCE = {"timeZone": "1.7.0"}
RAYCRONJOB_REQUIRED = {"jobTemplate", "schedule"}

SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
UPSCALING_MODES = {"Default", "Aggressive", "Conservative"}
AUTOSCALER_VERSIONS = {"v1", "v2"}
AUTH_MODES = {"disabled", "token"}

# ray-operator/controllers/ray/utils/constant.go: RayCluster names <= 53; a RayJob's cluster
# is named <rayjob>-<5 chars>, a RayCronJob's RayJobs <raycronjob>-<unix minute, <= 10 digits>.
MAX_RAYJOB_NAME = 53 - 6
MAX_RAYCRONJOB_NAME = MAX_RAYJOB_NAME - 11
GENERATE_NAME_SUFFIX = 5  # characters the API server appends to metadata.generateName

AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b")
AWS_SECRET_ASSIGNMENT = re.compile(
    r"aws_secret_access_key\s*[:=]\s*[\"']?(?P<value>[^\s\"'#]+)", re.IGNORECASE
)
# An AWS secret access key is 40 characters of base64.
BASE64_40 = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.I)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def manifest_paths() -> list[Path]:
    """Every manifest under k8s/, sorted, so each test sees (and ids) the same files."""
    return sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))


@cache
def load_docs(name: str) -> tuple[dict[str, Any], ...]:
    """The YAML documents of one k8s/ file, cached: many tests read the same files."""
    with open(K8S / name, encoding="utf-8") as f:
        return tuple(d for d in yaml.safe_load_all(f) if d is not None)


def one_doc(name: str) -> dict[str, Any]:
    """The single object of a one-document manifest, failing loudly if there are more."""
    docs = load_docs(name)
    assert len(docs) == 1, f"{name}: expected one document, found {len(docs)}"
    return docs[0]


def parsed_docs(name: str) -> tuple[dict[str, Any], ...]:
    """load_docs for test parameters: a broken file fails test_manifest_parses_... instead."""
    # A file that does not parse (or holds a non-mapping) yields nothing here.
    try:
        docs = load_docs(name)
    except yaml.YAMLError:
        return ()
    return tuple(d for d in docs if isinstance(d, dict))


def docs_of_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object of `kind` in k8s/, to check each kind's rules."""
    return [
        (path.name, doc)
        for path in manifest_paths()
        for doc in parsed_docs(path.name)
        if doc.get("kind") == kind
    ]


@cache
def kustomization() -> dict[str, Any]:
    """k8s/kustomization.yaml, cached: it ties the files, images and generators together."""
    return one_doc("kustomization.yaml")


def generated_configmaps() -> list[dict[str, Any]]:
    """What kustomize's configMapGenerator makes (no hash suffix), to schema-check it too."""
    (k,) = parsed_docs("kustomization.yaml") or ({},)
    out = []
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (K8S / f).read_text(encoding="utf-8") for f in gen["files"]}
        meta = {"name": gen["name"]}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    return out


@cache
def pyproject() -> dict[str, Any]:
    """pyproject.toml, cached: the manifests must follow its version and Ray pin."""
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


@cache
def ray_pin() -> str:
    """The exact Ray pin in pyproject.toml (ray[...]==X): images and rayVersion must match."""
    for dep in pyproject()["project"]["dependencies"]:
        req = Requirement(dep)
        if req.name == "ray":
            specs = list(req.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"ray is not pinned: {dep}"
            return specs[0].version
    raise AssertionError("pyproject.toml has no ray dependency")


def rayjob_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every RayJob spec in k8s/ (RayJobs' spec, RayCronJobs' jobTemplate): same rules apply."""
    for name, doc in docs_of_kind("RayJob"):
        yield name, doc["spec"]
    for name, doc in docs_of_kind("RayCronJob"):
        yield name, doc["spec"]["jobTemplate"]


RAYJOB_FILES = sorted({name for kind in ("RayJob", "RayCronJob") for name, _ in docs_of_kind(kind)})


def rayjob_spec(name: str) -> dict[str, Any]:
    """The one RayJob spec of a k8s/ file, for tests parametrized over RAYJOB_FILES."""
    (spec,) = [s for n, s in rayjob_specs() if n == name]
    return spec


def min_kuberay(name: str) -> str:
    """The oldest KubeRay a file must work with: RayCronJob needs a newer operator."""
    kinds = {doc["kind"] for doc in load_docs(name)}
    return MIN_KUBERAY_RAYCRONJOB if "RayCronJob" in kinds else MIN_KUBERAY_RAYJOB


def check_fields(where: str, obj: dict[str, Any], base: set[str], since: dict[str, str], at: str):
    """Fail if obj uses CRD fields missing from KubeRay `at`: the operator would reject them."""
    allowed = base | {f for f, v in since.items() if Version(v) <= Version(at)}
    unknown = sorted(set(obj) - allowed)
    assert not unknown, f"{where}: fields not in the KubeRay {at} CRD: {unknown}"


def pod_templates(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod template) for head, workers and submitter, to check every pod alike."""
    cluster = spec["rayClusterSpec"]
    yield "head", cluster["headGroupSpec"]["template"]
    for group in cluster.get("workerGroupSpecs", []):
        yield f"worker group {group['groupName']}", group["template"]
    if "submitterPodTemplate" in spec:
        yield "submitter", spec["submitterPodTemplate"]


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, container) over all pod templates of a RayJob spec, for image checks."""
    for where, template in pod_templates(spec):
        for c in template["spec"].get("containers", []):
            yield f"{where} container {c['name']}", c


def ray_images(spec: dict[str, Any]) -> set[str]:
    """The container images a RayJob spec runs: all must be the one raylabel image."""
    return {c["image"] for _, c in containers(spec)}


def raylabel_image_entry() -> dict[str, Any]:
    """kustomization.yaml's `images:` entry for raylabel, which sets the deployed tag."""
    (entry,) = [i for i in kustomization()["images"] if i["name"].endswith("/raylabel")]
    return entry


@cache
def k8s_schema(version: str, definition: str) -> jsonschema.protocols.Validator:
    """A strict validator for one Kubernetes definition (e.g. podtemplatespec-v1), offline."""
    # From the schemas kubernetes-validate ships, resolved the same way kubernetes_validate does.
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    schema_dir = base / f"v{version}.0-local-strict"
    if not schema_dir.is_dir():  # e.g. "1.37.0" given in full
        schema_dir = base / f"v{version}-local-strict"
    schema = json.loads((schema_dir / f"{definition}.json").read_text())
    defs = json.loads((schema_dir / "_definitions.json").read_text())
    registry = referencing.Registry().with_resources(
        [
            (schema["$id"], referencing.Resource.from_contents(schema)),
            (defs["$id"], referencing.Resource.from_contents(defs)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def parse_entrypoint(entrypoint: str) -> tuple[str, list[str], list[str]]:
    """`python jobs/X.py -c A.yaml ... k=v ...` -> (script, configs, overrides) to check them."""
    argv = shlex.split(entrypoint)
    assert argv[0] == "python", f"entrypoint should start with `python`: {entrypoint!r}"
    script, rest = argv[1], argv[2:]
    files: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] in ("-c", "--config"):
            files.append(rest[i + 1])
            i += 2
        else:
            overrides.append(rest[i])
            i += 1
    return script, files, overrides


def find_secrets(text: str) -> list[str]:
    """Things that look like real credentials (placeholders are fine), so none get committed."""
    hits = [m.group(0) for m in AWS_KEY_ID.finditer(text)]
    for m in AWS_SECRET_ASSIGNMENT.finditer(text):
        if m.group("value") != PLACEHOLDER:
            hits.append(m.group(0))
    hits += [m.group(0) for m in BASE64_40.finditer(text)]
    return hits


def builtin_docs() -> list[tuple[str, dict[str, Any]]]:
    """Every built-in-kind object in k8s/ plus the generated ConfigMap, to schema-check them all."""
    found = [
        (f"{name}:{doc['kind']}/{doc['metadata'].get('name')}", doc)
        for kind in sorted(BUILTIN_KINDS)
        for name, doc in docs_of_kind(kind)
    ]
    # The ConfigMap that kustomize's configMapGenerator makes from the nightly RayJob.
    found += [(f"configMapGenerator:{cm['metadata']['name']}", cm) for cm in generated_configmaps()]
    return found


def scanned_files() -> list[Path]:
    """The deployment files, image config and job scripts that must hold no credentials."""
    files = [*manifest_paths(), REPO / "Dockerfile", REPO / ".dockerignore"]
    return files + sorted((REPO / "conf").glob("*.yaml")) + sorted((REPO / "jobs").glob("*.py"))


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render `directory` with kubectl's built-in kustomize (offline), skipping without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: the kustomize render checks need its built-in kustomize")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory}:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]
