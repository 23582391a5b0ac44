"""The links and forms the functions sign name the payload bucket's own Region: S3's legacy global endpoint answers
400 in Regions launched after March 2019, and elsewhere redirects while a new bucket's name propagates."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from core.adapters import aws
from core.adapters.payloads import S3PayloadStore

BUCKET = "payloadbucket"


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    aws.session.cache_clear()
    aws.s3_client.cache_clear()
    yield
    aws.session.cache_clear()
    aws.s3_client.cache_clear()


@pytest.mark.usefixtures("fresh_clients")
@pytest.mark.parametrize("region", ["ap-southeast-3", "eu-west-1", "us-east-1"])
def test_s3_client_signs_links_and_forms_for_the_buckets_regional_endpoint(
    monkeypatch: pytest.MonkeyPatch, region: str
) -> None:
    # GIVEN a function in `region` (Lambda sets both variables)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    payloads = S3PayloadStore(BUCKET, aws.s3_client)

    # WHEN it signs a download link and an upload form
    link = urlsplit(payloads.download_url("results/some-task", 900))
    form = urlsplit(payloads.upload_form("uploads/owner/upload", 1024, 3600).url)

    # THEN both go to the bucket in its Region, never to s3.amazonaws.com
    expected = f"{BUCKET}.s3.{region}.amazonaws.com"
    assert (link.scheme, link.hostname, link.path) == ("https", expected, "/results/some-task")
    assert (form.scheme, form.hostname) == ("https", expected)
    assert f"%2F{region}%2Fs3%2Faws4_request" in link.query  # signed for that Region too


@pytest.mark.usefixtures("fresh_clients")
def test_s3_client_addresses_a_local_emulator_by_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    payloads = S3PayloadStore(BUCKET, aws.s3_client)

    link = urlsplit(payloads.download_url("results/some-task", 900))

    assert (link.netloc, link.path) == ("127.0.0.1:5000", f"/{BUCKET}/results/some-task")
