"""What raylabel needs from the RayJob / RayCronJob manifests under k8s/: the nightly
RayJob and RayCronJob run the same job, entrypoints run a job file with a valid config,
lifecycle and cluster shape, the Ray pin, and the raylabel image, account and credentials.

Fast and offline: no cluster, no Ray.
"""

from __future__ import annotations

import pytest
from docker_support import dockerfile_instructions
from k8s_support import (
    RAYJOB_FILES,
    REPO,
    docs_of_kind,
    one_doc,
    parse_entrypoint,
    pod_templates,
    pyproject,
    ray_images,
    ray_pin,
    rayjob_spec,
    raylabel_image_entry,
)


def test_nightly_rayjob_and_raycronjob_run_the_same_job():
    (cron,) = [doc for _, doc in docs_of_kind("RayCronJob")]
    assert cron["spec"]["jobTemplate"] == one_doc("rayjob-nightly.yaml")["spec"], (
        "raycronjob-nightly.yaml spec.jobTemplate differs from rayjob-nightly.yaml spec"
    )


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


def test_nightly_survives_a_lost_training_worker():
    """Issue #16: one lost Ray Train worker must not fail the night."""
    from raylabel.config import load_config

    _, files, overrides = parse_entrypoint(one_doc("rayjob-nightly.yaml")["spec"]["entrypoint"])
    assert load_config([REPO / f for f in files], overrides).train.max_failures >= 1
    assert load_config([REPO / "conf/nightly.yaml"], []).train.max_failures >= 1


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
