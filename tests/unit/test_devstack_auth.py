"""devstack.auth: claims passed to the functions as API Gateway's HTTP APIs pass them, and the local issuer's key."""

from __future__ import annotations

import stat
from pathlib import Path

from devstack.auth import LocalIssuer, claim_text


def test_claims_reach_the_function_as_text_and_lists_in_brackets() -> None:
    assert claim_text("alice") == "alice"
    assert claim_text(1700000000) == "1700000000"
    assert claim_text(True) == "true"
    assert claim_text(["admins", "users"]) == "[admins users]"


def test_the_issuer_is_saved_for_its_owner_only_and_signs_the_same_once_loaded(tmp_path: Path) -> None:
    issuer = LocalIssuer.generate()

    path = issuer.save(tmp_path / "state")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = LocalIssuer.load(tmp_path / "state")
    assert (loaded.issuer, loaded.audience, loaded.key.kid) == (issuer.issuer, issuer.audience, issuer.key.kid)
