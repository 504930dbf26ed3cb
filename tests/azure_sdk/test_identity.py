"""App registrations and client secrets with the real msal and azure-identity.

Graph calls go through plain HTTPS (requests, which azure-core already
depends on) with a token from azure-identity for the Graph resource, as a
script using Microsoft Graph would.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

if TYPE_CHECKING:
    from conftest import LockstepServer

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
LOCKSTEP_API_SCOPE = "api://lockstep/.default"


def graph(lockstep: LockstepServer, method: str, path: str, body: dict | None = None) -> requests.Response:
    with lockstep.credential() as cred:
        token = cred.get_token(GRAPH_SCOPE).token
    return requests.request(
        method,
        f"{lockstep.authority}/v1.0/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=lockstep.ca_cert,
        timeout=30,
    )


def new_app_with_secret(lockstep: LockstepServer) -> tuple[dict, dict]:
    name = f"Azure Communications Gateway service {uuid.uuid4().hex[:8]}"
    app = graph(lockstep, "POST", "applications", {"displayName": name})
    assert app.status_code == 201, app.text
    app_json = app.json()
    pw = graph(
        lockstep,
        "POST",
        f"applications/{app_json['id']}/addPassword",
        {"passwordCredential": {"displayName": "test"}},
    )
    assert pw.status_code == 200, pw.text
    return app_json, pw.json()


def credential_for(lockstep: LockstepServer, app_id: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        lockstep.tenant_id,
        app_id,
        secret,
        authority=lockstep.authority,
        disable_instance_discovery=True,
        connection_verify=lockstep.ca_cert,
    )


def test_azure_identity_token_then_remove_password(lockstep: LockstepServer) -> None:
    app, pw = new_app_with_secret(lockstep)
    assert pw["hint"] == pw["secretText"][:3]
    with credential_for(lockstep, app["appId"], pw["secretText"]) as cred:
        assert cred.get_token(LOCKSTEP_API_SCOPE).token.count(".") == 2

    removed = graph(lockstep, "POST", f"applications/{app['id']}/removePassword", {"keyId": pw["keyId"]})
    assert removed.status_code == 204, removed.text

    # A new credential object has no cached token: the removed secret must fail at once.
    with credential_for(lockstep, app["appId"], pw["secretText"]) as cred:
        with pytest.raises(ClientAuthenticationError) as excinfo:
            cred.get_token(LOCKSTEP_API_SCOPE)
    assert "AADSTS7000215" in str(excinfo.value)


def test_msal_confidential_client(lockstep: LockstepServer) -> None:
    app, pw = new_app_with_secret(lockstep)
    http = requests.Session()
    http.verify = lockstep.ca_cert
    http.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace verify
    client = msal.ConfidentialClientApplication(
        app["appId"],
        client_credential=pw["secretText"],
        authority=f"{lockstep.authority}/{lockstep.tenant_id}",
        instance_discovery=False,
        http_client=http,
    )
    result = client.acquire_token_for_client(scopes=[LOCKSTEP_API_SCOPE])
    assert "access_token" in result, result
    assert result["token_type"].lower() == "bearer"

    removed = graph(lockstep, "POST", f"applications/{app['id']}/removePassword", {"keyId": pw["keyId"]})
    assert removed.status_code == 204

    fresh = msal.ConfidentialClientApplication(
        app["appId"],
        client_credential=pw["secretText"],
        authority=f"{lockstep.authority}/{lockstep.tenant_id}",
        instance_discovery=False,
        http_client=http,
    )
    failed = fresh.acquire_token_for_client(scopes=[LOCKSTEP_API_SCOPE])
    assert failed.get("error") == "invalid_client", failed
    assert 7000215 in failed.get("error_codes", []), failed


def test_secret_text_is_returned_only_once(lockstep: LockstepServer) -> None:
    app, pw = new_app_with_secret(lockstep)
    shown = graph(lockstep, "GET", f"applications/{app['id']}").json()
    creds = shown["passwordCredentials"]
    assert [c["keyId"] for c in creds] == [pw["keyId"]]
    assert creds[0]["secretText"] is None
    assert creds[0]["hint"] == pw["hint"]


def test_find_app_by_name_and_app_id(lockstep: LockstepServer) -> None:
    app, _ = new_app_with_secret(lockstep)
    name = app["displayName"].replace("'", "''")
    found = graph(lockstep, "GET", f"applications?$filter=displayName eq '{name}'").json()["value"]
    assert [a["id"] for a in found] == [app["id"]]
    by_app_id = graph(lockstep, "GET", f"applications(appId='{app['appId']}')")
    assert by_app_id.status_code == 200 and by_app_id.json()["id"] == app["id"]
    sps = graph(lockstep, "GET", f"servicePrincipals?$filter=appId eq '{app['appId']}'").json()["value"]
    assert len(sps) == 1 and sps[0]["appId"] == app["appId"]
