"""`sam build` packages the functions as Lambda gets them, without Docker, for the template's arm64."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM = Path(sys.executable).parent / "sam"
FUNCTIONS = ("SubmitFunction", "ResultFunction", "WorkerFunction")


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
    # The cut botocore models core.aws reads instead of botocore's full ones.
    assert (artifact / "core" / "botocore_models" / "dynamodb" / "2012-08-10" / "service-2.json").is_file()


def test_sam_build_packages_binaries_for_the_arm64_runtime(build_dir: Path) -> None:
    binaries = list((build_dir / "SubmitFunction" / "msgspec").glob("*.so"))

    assert binaries
    assert all("cpython-313-aarch64" in binary.name for binary in binaries)
