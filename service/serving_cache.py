"""Registered model versions, downloaded and verified; their copies in the serving cache.

A version is served only when the SHA-256 of its files (`model_checksum`) equals the checksum
recorded in the registry at registration (the version's tag `model_sha256`), the check
`tracking.load_model` makes. Here the verified files are also kept, byte for byte, so that the
cached copy can be checked against that same checksum later:

    <cache_dir>/<name>/<version>/model/          the registered files, as downloaded
    <cache_dir>/<name>/<version>/registry.json   name, version, run_id and the recorded checksum
    <cache_dir>/<name>/@<alias>.json             the version the alias pointed at when last loaded

The checksum is stored beside the copy because the registry may be down when the copy is needed
(a restart during an outage). A copy whose files do not hash to it, or without one, is refused.
Only the forecaster's own files are read from a copy (JSON, .npz, a state dict read with
`weights_only=True`): MLflow's code file is never run from it, and nothing is unpickled.

What this cannot stop: someone able to write the cache can rewrite `registry.json` too. Such a
copy would be served while the registry is down, and replaced as soon as it answers (the served
files' checksum is compared with the registry's own record). Keep the cache writable by the
service's user only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from forecaster.model import FuzzyLSTMForecaster
from forecaster.tracking import CHECKSUM_TAG, ModelIntegrityError
from forecaster.tracking.pyfunc import model_checksum


@dataclass(frozen=True)
class RegisteredVersion:
    """A registry version as the registry describes it now."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    checksum: str | None  # the tag recorded at registration; None for versions registered before it

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What a refusal is remembered by: the same key means the same expected files."""
        return self.name, self.version, self.checksum


def registered_version(uri: str) -> RegisteredVersion:
    """The version `models:/name@alias` or `models:/name/3` points at (asks the registry)."""
    from mlflow import MlflowClient

    name, alias, number = cache_keys(uri)
    client = MlflowClient()
    found = (
        client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    )
    return RegisteredVersion(name, str(found.version), alias, found.run_id, found.tags.get(CHECKSUM_TAG))


def cache_keys(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name@alias` -> (name, alias, None); `models:/name/3` -> (name, None, "3")."""
    spec = uri.removeprefix("models:/")
    if "@" in spec:
        name, alias = spec.split("@", 1)
        return name, alias, None
    name, version = spec.rsplit("/", 1)
    return name, None, version


def download_verified(version: RegisteredVersion, dest: Path) -> Path:
    """Download a version's files under `dest`; ModelIntegrityError unless they match its checksum."""
    import mlflow

    what = f"{version.name} v{version.version}"
    if version.checksum is None:
        raise ModelIntegrityError(
            f"{what} has no recorded checksum (tag {CHECKSUM_TAG}): it was registered before models "
            "were checksummed and logged without pickle; refusing to load it. Register it again "
            "(python -m pipelines.train, or forecaster quickstart)"
        )
    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=str(dest))
    )
    if (actual := model_checksum(local)) != version.checksum:
        raise ModelIntegrityError(
            f"{what}: its files changed since registration (SHA-256 {actual[:16]}..., recorded "
            f"{version.checksum[:16]}...); refusing to load it"
        )
    return local


def read_forecaster(model_dir: Path) -> FuzzyLSTMForecaster:
    """The forecaster in a registered model's files: its `model_dir` artifact, read as data."""
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["python_function"]
    return FuzzyLSTMForecaster.load(model_dir / flavor["artifacts"]["model_dir"]["path"])


def write_entry(cache_dir: Path, version: RegisteredVersion, files: Path) -> Path:
    """Copy verified `files` to `<cache_dir>/<name>/<version>/`, replacing a copy that fails its
    check; point `@<alias>.json` at it.

    Every write is atomic (a temporary directory or file, then a rename), so a worker killed
    mid-write, or two workers writing at once, never leave a half copy a restart would load.
    """
    folder = cache_dir / version.name
    target = folder / version.version
    folder.mkdir(parents=True, exist_ok=True)
    if entry_problem(target, version.checksum) is not None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{version.version}.", dir=folder))
        try:
            shutil.copytree(files, tmp / "model")
            record = {"name": version.name, "version": version.version, "run_id": version.run_id,
                      CHECKSUM_TAG: version.checksum, "cached_at": datetime.now(UTC).isoformat()}  # fmt: skip
            (tmp / "registry.json").write_text(json.dumps(record))
            _install(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if version.alias:
        fd, tmp_file = tempfile.mkstemp(prefix=f".@{version.alias}.", dir=folder)
        with os.fdopen(fd, "w") as out:
            json.dump({"version": version.version}, out)
        os.replace(tmp_file, folder / f"@{version.alias}.json")
    return target


def _install(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`; a copy already there (one that failed its check) is removed first."""
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced.", dir=target.parent))
        with contextlib.suppress(FileNotFoundError):  # another worker moved it first
            os.rename(target, trash / "old")
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # else another worker installed its verified copy first
            raise


def entry_problem(target: Path, expected: str | None = None) -> str | None:
    """Why the cached copy at `target` must not be served, or None when its files hash to the
    checksum recorded beside them (and to `expected`, when given)."""
    what = f"{target.parent.name} v{target.name} (cached copy)"
    record = target / "registry.json"
    if not record.is_file():
        return f"{what}: no such copy" if not target.exists() else f"{what}: no recorded checksum"
    recorded = json.loads(record.read_text()).get(CHECKSUM_TAG)
    if not recorded:
        return f"{what}: no recorded checksum; refusing to serve it"
    if expected is not None and recorded != expected:
        return f"{what}: recorded checksum {recorded[:16]}... is not the registry's {expected[:16]}..."
    if (actual := model_checksum(target / "model")) != recorded:
        return (
            f"{what}: its files changed since it was cached (SHA-256 {actual[:16]}..., recorded "
            f"{recorded[:16]}...); refusing to serve it"
        )
    return None


@dataclass(frozen=True)
class CachedCopy:
    forecaster: FuzzyLSTMForecaster
    name: str
    version: str
    alias: str | None
    run_id: str | None
    checksum: str  # of the files it was read from: compared with the registry's once it answers


def read_entry(cache_dir: Path, uri: str) -> CachedCopy | None:
    """The verified cached copy of what registry `uri` pointed at when last loaded; None when
    nothing is cached; ModelIntegrityError when the copy fails its check."""
    name, alias, version = cache_keys(uri)
    folder = cache_dir / name
    if alias:
        pointer = folder / f"@{alias}.json"
        if not pointer.is_file():
            return None
        version = str(json.loads(pointer.read_text())["version"])
    target = folder / str(version)
    if not target.exists():
        return None
    if problem := entry_problem(target):
        raise ModelIntegrityError(problem)
    record = json.loads((target / "registry.json").read_text())
    forecaster = read_forecaster(target / "model")
    return CachedCopy(forecaster, name, str(version), alias, record.get("run_id"), record[CHECKSUM_TAG])
