"""The kustomization under k8s/, the batch/v1 CronJob it applies, and the RBAC objects;
`kubectl kustomize` renders run when kubectl is present (its built-in kustomize, offline).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from k8s_support import (
    K8S,
    RAYJOB_FILES,
    docs_of_kind,
    kustomization,
    kustomize,
    manifest_paths,
    one_doc,
    pyproject,
    ray_images,
    rayjob_spec,
    raylabel_image_entry,
)

# ---------------------------------------------------------------------------------------
# The batch/v1 CronJob, RBAC and the kustomization
# ---------------------------------------------------------------------------------------


def test_kustomize_image_tag_is_the_project_version():
    entry = raylabel_image_entry()
    assert str(entry["newTag"]) == pyproject()["project"]["version"]


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
# kustomize render (kubectl's built-in kustomize; offline)
# ---------------------------------------------------------------------------------------
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
