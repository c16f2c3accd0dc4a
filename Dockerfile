# raylabel image: the official Ray image whose Ray version equals the pin in pyproject.toml
# (ray[data,train,default]==2.60.0), plus raylabel, its jobs/ entrypoints and conf/ files.
#
#   docker build -t registry.example.com/raylabel:0.1.0 .
#   docker build --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-cpu \
#       -t registry.example.com/raylabel:0.1.0-cpu .          # CPU-only variant
#
# Keep the Ray version in BASE_IMAGE equal to the pin: KubeRay's rayVersion (k8s/*.yaml)
# and the Ray that pip sees must agree, and pip must not replace the image's Ray.
# tests/deploy/ checks all three. No credentials are baked in: S3 credentials
# come from the environment at run time (a Secret or IRSA, see k8s/).
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="raylabel" \
      org.opencontainers.image.description="Nightly distributed auto-labeling on Ray: train, label, calibrate, sample for review, evaluate." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

ENV PYTHONUNBUFFERED=1

# The Ray images run as the non-root user `ray` (uid 1000, group `users`, gid 100).
# A numeric USER lets Kubernetes verify runAsNonRoot.
USER 1000:100
WORKDIR /home/ray/raylabel

# .dockerignore is an allowlist: only pyproject.toml, README.md (the package metadata
# reads it), raylabel/, jobs/ and conf/ reach the build context.
COPY --chown=1000:100 . .

# One layer: check that the base image's Ray is the version pinned in pyproject.toml (so
# pip keeps the image's Ray instead of replacing it), install raylabel with its pinned
# dependencies, check the result imports, and drop the in-tree build leftovers.
RUN python -c "import tomllib, ray; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; pin = next(d for d in deps if d.startswith('ray[')).split('==')[1]; assert ray.__version__ == pin, f'base image has Ray {ray.__version__}, pyproject.toml pins {pin}'" \
    && pip install --no-cache-dir . \
    && python -c "import importlib.metadata as md, ray, raylabel; print('ray', ray.__version__, 'raylabel', md.version('raylabel'))" \
    && rm -rf build ./*.egg-info
