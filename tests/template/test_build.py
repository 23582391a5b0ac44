"""`sam build` packages the functions as Lambda gets them, without Docker, for the template's arm64; the tasks'
packages (numpy, ...) in the worker's layer only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
SAM = Path(sys.executable).parent / "sam"
FUNCTIONS = ("SubmitFunction", "ResultFunction", "WorkerFunction")
API_FUNCTIONS = ("SubmitFunction", "ResultFunction")
TASK_PACKAGES = ROOT / "layers" / "tasks" / "requirements.txt"
# Lambda's limit on a function's code and layers together, unzipped (250 MB, in bytes).
LAMBDA_UNZIPPED_LIMIT = 262_144_000
EM_AARCH64 = 183


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sam-build")
    subprocess.run(
        [str(SAM), "build", "--build-dir", str(out), "--cache-dir", str(out / ".cache")],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.mark.parametrize("function", FUNCTIONS)
def test_sam_build_packages_the_shared_core_and_the_tasks(build_dir: Path, function: str) -> None:
    artifact = build_dir / function

    for package in ("core", "tasks", "submit", "result", "worker", "aws_lambda_powertools", "msgspec"):
        assert (artifact / package / "__init__.py").is_file(), f"{function} lacks {package}"
    # boto3 comes with the Lambda runtime: packaging it would only slow cold starts.
    assert not (artifact / "boto3").exists()
    # The cut botocore models core.adapters.aws reads instead of botocore's full ones.
    assert (artifact / "core" / "adapters" / "botocore_models" / "dynamodb" / "2012-08-10" / "service-2.json").is_file()


def test_sam_build_packages_binaries_for_the_arm64_runtime(build_dir: Path) -> None:
    binaries = list((build_dir / "SubmitFunction" / "msgspec").glob("*.so"))

    assert binaries
    assert all("cpython-313-aarch64" in binary.name for binary in binaries)


@pytest.fixture(scope="module")
def built_template(build_dir: Path) -> dict[str, Any]:
    return yaml_parse((build_dir / "template.yaml").read_text())  # type: ignore[no-any-return]


def layer_dirs(build_dir: Path, built_template: dict[str, Any], function: str) -> list[Path]:
    resources = built_template["Resources"]
    layers = resources[function]["Properties"].get("Layers", [])
    return [build_dir / resources[layer["Ref"]]["Properties"]["ContentUri"] for layer in layers]


def unzipped_bytes(directory: Path) -> int:
    return sum(path.lstat().st_size for path in directory.rglob("*") if path.is_file() or path.is_symlink())


def elf_machine(path: Path) -> int | None:
    """The e_machine of a 64-bit little-endian ELF file, None for anything else."""
    header = path.read_bytes()[:20]
    if header[:6] != b"\x7fELF\x02\x01":
        return None
    return int.from_bytes(header[18:20], "little")


def test_sam_build_packages_the_tasks_packages_in_the_workers_layer_only(
    build_dir: Path, built_template: dict[str, Any]
) -> None:
    (layer,) = layer_dirs(build_dir, built_template, "WorkerFunction")

    # Lambda puts a Python layer's python/ on sys.path.
    assert (layer / "python" / "numpy" / "__init__.py").is_file()
    for function in FUNCTIONS:
        assert not (build_dir / function / "numpy").exists(), f"{function} packages numpy itself"
    for function in API_FUNCTIONS:
        assert layer_dirs(build_dir, built_template, function) == [], f"{function} has a layer"


def test_sam_build_packages_the_tasks_binaries_for_the_arm64_runtime(
    build_dir: Path, built_template: dict[str, Any]
) -> None:
    (layer,) = layer_dirs(build_dir, built_template, "WorkerFunction")
    binaries = [path for path in layer.rglob("*.so*") if path.is_file()]

    assert any(
        binary.parts[-3:] == ("numpy", "_core", "_multiarray_umath.cpython-313-aarch64-linux-gnu.so")
        for binary in binaries
    )
    assert [binary.name for binary in binaries if elf_machine(binary) != EM_AARCH64] == []


def test_the_workers_code_and_layers_fit_lambdas_unzipped_limit(
    build_dir: Path, built_template: dict[str, Any]
) -> None:
    parts = [build_dir / "WorkerFunction", *layer_dirs(build_dir, built_template, "WorkerFunction")]

    sizes = {part.name: unzipped_bytes(part) for part in parts}

    print(f"worker unzipped: {', '.join(f'{name} {size / 1e6:.1f} MB' for name, size in sizes.items())}")
    assert sum(sizes.values()) <= LAMBDA_UNZIPPED_LIMIT


def test_the_dev_dependencies_pin_the_tasks_packages_as_the_layer_does() -> None:
    # The local stack's worker imports them from .venv: the same versions as deployed.
    pins = [line.strip() for line in TASK_PACKAGES.read_text().splitlines() if re.match(r"^\s*[A-Za-z0-9]", line)]
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]

    assert pins
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.]+", pin) for pin in pins)
    assert set(pins) <= set(dev)
