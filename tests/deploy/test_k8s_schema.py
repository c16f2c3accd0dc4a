"""The k8s/ manifests against schemas: every YAML file parses and passes yamllint, the
Kubernetes built-in kinds (and the Ray pod templates) against the real OpenAPI schemas that
kubernetes-validate ships, RayJob / RayCronJob against the KubeRay CRD field lists in
k8s_support.py plus the checks the operator runs before it creates anything.

Fast and offline: no cluster, no Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from k8s_support import (
    AUTH_MODES,
    AUTH_OPTIONS,
    AUTH_OPTIONS_SINCE,
    AUTOSCALER_OPTIONS,
    AUTOSCALER_OPTIONS_SINCE,
    AUTOSCALER_VERSIONS,
    BUILTIN_KINDS,
    GENERATE_NAME_SUFFIX,
    HEAD_GROUP_SPEC,
    HEAD_GROUP_SPEC_SINCE,
    K8S_VERSIONS,
    MAX_RAYCRONJOB_NAME,
    MAX_RAYJOB_NAME,
    MIN_KUBERAY_RAYCRONJOB,
    RAYCLUSTER_SPEC,
    RAYCLUSTER_SPEC_SINCE,
    RAYCRONJOB_REQUIRED,
    RAYCRONJOB_SPEC,
    RAYCRONJOB_SPEC_SINCE,
    RAYJOB_FILES,
    RAYJOB_SPEC,
    RAYJOB_SPEC_SINCE,
    REPO,
    SUBMISSION_MODES,
    UPSCALING_MODES,
    WORKER_GROUP_REQUIRED,
    WORKER_GROUP_SPEC,
    WORKER_GROUP_SPEC_SINCE,
    builtin_docs,
    check_fields,
    docs_of_kind,
    k8s_schema,
    load_docs,
    manifest_paths,
    min_kuberay,
    pod_templates,
    rayjob_spec,
)
from packaging.version import Version
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

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
