"""What `docker push <RepositoryUri>:<tag>` leaves in an ECR repository, for the emulated one:
a manifest under that tag (no layers: nothing ever pulls them here)."""
import json

MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
               "digest": "sha256:" + "1" * 64},
    "layers": []})


def push_image(ecr, repository: str, tag: str) -> None:
    ecr.put_image(repositoryName=repository, imageManifest=MANIFEST, imageTag=tag)
