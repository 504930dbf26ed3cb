"""Key Vault secrets data plane, driven by the unmodified official Azure SDK for Python.

Every test uses its own secret names, so the tests are independent of each other
and of their order, although they share one server and one vault.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import KeyVaultSecretIdentifier, SecretClient
from azure.keyvault.secrets._shared import HttpChallengeCache

if TYPE_CHECKING:
    from azure.identity import ClientSecretCredential
    from conftest import LockstepServer

VERSION_RE = re.compile(r"^[0-9a-f]{32}$")
PAGE_LIMIT = 25  # the server's default and maximum page size
LOCKSTEP_API_SCOPE = "api://lockstep/.default"


def unique_name(prefix: str = "t") -> str:
    """A fresh secret name; names must match ^[0-9a-zA-Z-]{1,127}$."""
    return f"{prefix}-{uuid.uuid4().hex}"


def whole_seconds(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


def delete_and_purge(client: SecretClient, name: str) -> None:
    client.begin_delete_secret(name).wait()
    client.purge_deleted_secret(name)


# --- authentication -------------------------------------------------------------


def test_client_secret_credential_gets_token(lockstep: LockstepServer) -> None:
    with lockstep.credential() as cred:
        token = cred.get_token(LOCKSTEP_API_SCOPE)
    assert token.token.count(".") == 2, "expected a JWT"
    assert token.expires_on > time.time() + 300


def test_wrong_client_secret_is_rejected_with_aadsts7000215(lockstep: LockstepServer) -> None:
    with lockstep.credential(client_secret="not-the-secret-" + uuid.uuid4().hex) as cred:
        with pytest.raises(ClientAuthenticationError) as excinfo:
            cred.get_token(LOCKSTEP_API_SCOPE)
    assert "AADSTS7000215" in str(excinfo.value)


def test_challenge_flow_replays_request_body(
    lockstep: LockstepServer, credential: ClientSecretCredential
) -> None:
    # With no cached challenge, the first request (a PUT with a body) goes out without
    # body and token, gets the 401 challenge, and is then replayed with both.
    HttpChallengeCache.clear()
    name = unique_name("challenge")
    with lockstep.secret_client(credential) as fresh_client:
        secret = fresh_client.set_secret(name, "first-request-value")
        assert secret.value == "first-request-value"
        assert fresh_client.get_secret(name).value == "first-request-value"


# --- set / get / update -----------------------------------------------------------


def test_set_secret_returns_bundle(client: SecretClient, lockstep: LockstepServer) -> None:
    name = unique_name("set")
    secret = client.set_secret(name, "s3cr3t", content_type="text/plain", tags={"env": "test"})

    assert secret.name == name
    assert secret.value == "s3cr3t"
    assert VERSION_RE.match(secret.properties.version)
    assert secret.id == f"{lockstep.vault_url}/secrets/{name}/{secret.properties.version}"
    assert secret.properties.vault_url == lockstep.vault_url
    assert secret.properties.content_type == "text/plain"
    assert secret.properties.tags == {"env": "test"}
    assert secret.properties.enabled is True
    assert secret.properties.created_on is not None
    assert secret.properties.updated_on is not None

    identifier = KeyVaultSecretIdentifier(secret.id)
    assert (identifier.name, identifier.version) == (name, secret.properties.version)


def test_get_latest_and_by_version(client: SecretClient) -> None:
    name = unique_name("get")
    first = client.set_secret(name, "value-1")
    second = client.set_secret(name, "value-2")
    assert first.properties.version != second.properties.version

    latest = client.get_secret(name)
    assert latest.value == "value-2"
    assert latest.properties.version == second.properties.version

    pinned = client.get_secret(name, second.properties.version)
    assert pinned.value == "value-2"
    assert pinned.id == second.id


def test_previous_version_still_readable(client: SecretClient) -> None:
    name = unique_name("prev")
    first = client.set_secret(name, "old-value")
    client.set_secret(name, "new-value")

    old = client.get_secret(name, first.properties.version)
    assert old.value == "old-value"
    assert old.properties.version == first.properties.version
    assert old.properties.enabled is True


def test_update_secret_properties(client: SecretClient) -> None:
    name = unique_name("update")
    original = client.set_secret(name, "value", content_type="text/plain", tags={"a": "1"})
    expires = whole_seconds(datetime.now(timezone.utc) + timedelta(days=70))

    updated = client.update_secret_properties(
        name,
        content_type="application/json",
        tags={"owner": "lockstep", "rotation": "70d"},
        expires_on=expires,
    )
    assert updated.version == original.properties.version
    assert updated.content_type == "application/json"
    assert updated.tags == {"owner": "lockstep", "rotation": "70d"}
    assert updated.expires_on == expires
    assert updated.enabled is True

    # The value is untouched and the new properties are what a read returns.
    secret = client.get_secret(name)
    assert secret.value == "value"
    assert secret.properties.content_type == "application/json"
    assert secret.properties.tags == {"owner": "lockstep", "rotation": "70d"}
    assert secret.properties.expires_on == expires

    disabled = client.update_secret_properties(name, original.properties.version, enabled=False)
    assert disabled.enabled is False
    assert disabled.expires_on == expires  # attributes not sent are kept


def test_update_targets_a_specific_version(client: SecretClient) -> None:
    name = unique_name("updver")
    first = client.set_secret(name, "v1")
    second = client.set_secret(name, "v2")

    client.update_secret_properties(name, first.properties.version, tags={"which": "first"})

    assert client.get_secret(name, first.properties.version).properties.tags == {"which": "first"}
    assert not client.get_secret(name, second.properties.version).properties.tags


def test_disabled_secret_get_is_forbidden(client: SecretClient) -> None:
    name = unique_name("disabled")
    secret = client.set_secret(name, "value")
    client.update_secret_properties(name, enabled=False)

    for version in (None, secret.properties.version):
        with pytest.raises(HttpResponseError) as excinfo:
            client.get_secret(name, version)
        assert excinfo.value.status_code == 403
        assert not isinstance(excinfo.value, ResourceNotFoundError)
        assert excinfo.value.error is not None
        assert excinfo.value.error.code in ("Forbidden", "SecretDisabled")

    client.update_secret_properties(name, enabled=True)
    assert client.get_secret(name).value == "value"


def test_unknown_secret_is_not_found(client: SecretClient) -> None:
    name = unique_name("missing")
    with pytest.raises(ResourceNotFoundError) as excinfo:
        client.get_secret(name)
    assert excinfo.value.status_code == 404
    assert excinfo.value.error is not None
    assert excinfo.value.error.code == "SecretNotFound"

    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name, uuid.uuid4().hex)


# --- listing and paging ----------------------------------------------------------


def test_list_properties_of_secrets_spans_pages(client: SecretClient) -> None:
    prefix = unique_name("list")
    names = {f"{prefix}-{i:02d}" for i in range(PAGE_LIMIT + 2)}
    for name in sorted(names):
        client.set_secret(name, "value", tags={"batch": prefix})

    pages = [list(page) for page in client.list_properties_of_secrets().by_page()]
    assert len(pages) >= 2, "more than 25 secrets must not fit in one page"
    assert all(len(page) <= PAGE_LIMIT for page in pages)

    listed = [props for page in pages for props in page if props.name.startswith(prefix)]
    assert {props.name for props in listed} == names
    assert len(listed) == len(names), "a secret was listed twice"
    for props in listed:
        assert props.tags == {"batch": prefix}
        assert props.enabled is True
        assert props.version is None, "list_properties_of_secrets returns base identifiers"


def test_list_properties_of_secrets_honours_max_page_size(client: SecretClient) -> None:
    prefix = unique_name("small")
    for i in range(7):
        client.set_secret(f"{prefix}-{i}", "value")

    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=3).by_page()]
    assert all(len(page) <= 3 for page in pages)
    listed = sorted(props.name for page in pages for props in page if props.name.startswith(prefix))
    assert listed == [f"{prefix}-{i}" for i in range(7)]


def test_list_properties_of_secret_versions_spans_pages(client: SecretClient) -> None:
    name = unique_name("versions")
    versions = {client.set_secret(name, f"value-{i}").properties.version for i in range(PAGE_LIMIT + 2)}
    assert len(versions) == PAGE_LIMIT + 2

    pages = [list(page) for page in client.list_properties_of_secret_versions(name).by_page()]
    assert len(pages) >= 2, "more than 25 versions must not fit in one page"
    assert all(len(page) <= PAGE_LIMIT for page in pages)

    listed = [props for page in pages for props in page]
    assert all(props.name == name for props in listed)
    assert sorted(props.version for props in listed) == sorted(versions)


# --- soft delete, recover, purge ---------------------------------------------------


def test_delete_get_deleted_and_list_deleted(client: SecretClient) -> None:
    name = unique_name("delete")
    client.set_secret(name, "value")

    poller = client.begin_delete_secret(name)
    poller.wait()
    assert poller.done()
    deleted = poller.result()
    assert deleted.name == name
    assert deleted.recovery_id, "soft-delete must be on (the poller relies on recoveryId)"
    assert deleted.deleted_date is not None
    assert deleted.scheduled_purge_date is not None

    fetched = client.get_deleted_secret(name)
    assert fetched.name == name
    assert fetched.recovery_id == deleted.recovery_id

    listed = [d for d in client.list_deleted_secrets() if d.name == name]
    assert len(listed) == 1
    assert listed[0].recovery_id == deleted.recovery_id
    assert listed[0].deleted_date is not None

    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    assert name not in {props.name for props in client.list_properties_of_secrets()}


def test_set_on_deleted_name_conflicts(client: SecretClient) -> None:
    name = unique_name("conflict")
    client.set_secret(name, "value")
    client.begin_delete_secret(name).wait()

    with pytest.raises(ResourceExistsError) as excinfo:
        client.set_secret(name, "new-value")
    assert excinfo.value.status_code == 409


def test_recover_deleted_secret(client: SecretClient) -> None:
    name = unique_name("recover")
    first = client.set_secret(name, "value-1")
    second = client.set_secret(name, "value-2")
    client.begin_delete_secret(name).wait()

    poller = client.begin_recover_deleted_secret(name)
    poller.wait()
    recovered = poller.result()
    assert recovered.name == name
    assert recovered.version == second.properties.version

    assert client.get_secret(name).value == "value-2"
    assert client.get_secret(name, first.properties.version).value == "value-1"
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)


def test_purge_deleted_secret(client: SecretClient) -> None:
    name = unique_name("purge")
    client.set_secret(name, "value")
    client.begin_delete_secret(name).wait()

    client.purge_deleted_secret(name)

    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    # The name is free again.
    assert client.set_secret(name, "reborn").value == "reborn"


# --- backup and restore --------------------------------------------------------------


def test_backup_and_restore_all_versions(client: SecretClient) -> None:
    name = unique_name("backup")
    created = [
        client.set_secret(name, f"value-{i}", content_type="text/plain", tags={"i": str(i)})
        for i in range(3)
    ]
    backup = client.backup_secret(name)
    assert isinstance(backup, bytes) and backup

    # Restoring over an existing secret is refused.
    with pytest.raises(ResourceExistsError):
        client.restore_secret_backup(backup)

    delete_and_purge(client, name)
    restored = client.restore_secret_backup(backup)
    assert restored.name == name
    assert restored.version == created[-1].properties.version

    versions = sorted(props.version for props in client.list_properties_of_secret_versions(name))
    assert versions == sorted(s.properties.version for s in created)
    for i, original in enumerate(created):
        secret = client.get_secret(name, original.properties.version)
        assert secret.value == f"value-{i}"
        assert secret.properties.content_type == "text/plain"
        assert secret.properties.tags == {"i": str(i)}
    assert client.get_secret(name).value == "value-2"


def test_tampered_backup_is_rejected(client: SecretClient) -> None:
    name = unique_name("tamper")
    client.set_secret(name, "value")
    backup = client.backup_secret(name)
    delete_and_purge(client, name)

    tampered = bytearray(backup)
    tampered[len(tampered) // 2] ^= 0x01
    for blob in (bytes(tampered), b"not a lockstep backup"):
        with pytest.raises(HttpResponseError) as excinfo:
            client.restore_secret_backup(blob)
        assert excinfo.value.status_code == 400

    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    # The untouched blob still restores, so the 400 was about the tampering.
    assert client.restore_secret_backup(backup).name == name
