"""Push end to end: the wallet registers devices through the API, the worker sends through local
servers speaking FCM's and APNs' protocols (verifying every JWT), and a platform's "unregistered"
marks the device, so the follow-up moves on and push is unreachable until a new token comes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.config import ApnsSettings, FcmSettings, Settings
from followup.kernel.time import ManualClock
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import wipe
from tests.push_servers import PROJECT_ID, ApnsServer, FcmServer, apns_reason, fcm_error

ANDROID_TOKEN = "fcmTokenOfAnAndroidPhone:APA91b" + "x" * 100
IOS_TOKEN = "a1b2c3d4" * 8
CLIENT_EMAIL = "followup@demo-wallet.iam.gserviceaccount.com"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class Wallet:
    runtime: Runtime
    api: TestClient
    fcm: FcmServer
    apns: ApnsServer
    clock: ManualClock

    def followups(self) -> list[dict[str, Any]]:
        return list(self.api.get("/api/v1/followups").json()["items"])

    def invite(self, event: str, customer: str = "c1") -> None:
        assert self.api.post("/api/v1/events", json={"events": [transfer(event, customer)]}).status_code == 200
        self.clock.advance(dt.timedelta(minutes=31))
        Worker(self.runtime).run_until_idle()


@pytest.fixture
def wallet(settings: Settings, clock: ManualClock, tmp_path: Path) -> Iterator[Wallet]:
    account_key, apns_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )
    credentials = tmp_path / "service-account.json"
    credentials.write_text(json.dumps({"private_key": _pem(account_key), "client_email": CLIENT_EMAIL}))
    p8 = tmp_path / "AuthKey.p8"
    p8.write_text(_pem(apns_key))
    fcm = FcmServer(public_key=account_key.public_key(), client_email=CLIENT_EMAIL, clock=clock)
    apns = ApnsServer(
        public_key=apns_key.public_key(),
        key_id="ABC123DEFG",
        team_id="DEF123GHIJ",
        topic="com.example.wallet",
        clock=clock,
    )
    configured = settings.model_copy(
        update={
            "fcm": FcmSettings(
                credentials_file=str(credentials), project_id=PROJECT_ID, send_url=fcm.send_url, token_url=fcm.token_url
            ),
            "apns": ApnsSettings(
                key_file=str(p8), key_id="ABC123DEFG", team_id="DEF123GHIJ", topic="com.example.wallet", url=apns.url
            ),
        }
    )
    runtime = build_runtime(configured, clock=clock)
    try:
        with runtime.session() as session:
            _, key = staff.create_api_key(session, name="tests", now=clock.now())
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as api:
            yield Wallet(runtime, api, fcm, apns, clock)
    finally:
        runtime.close()
        fcm.stop()
        apns.stop()
        wipe(runtime.engine)


def _push_customer(wallet: Wallet, customer: str = "c1") -> None:
    make_customer(wallet.runtime, customer, consents={"feedback": {"push": True, "email": True}})


def test_devices_are_registered_replaced_and_forgotten_with_clear_refusals(wallet: Wallet) -> None:
    _push_customer(wallet)
    path = "/api/v1/customers/c1/devices/phone-1"
    created = wallet.api.put(path, json={"platform": "android", "token": ANDROID_TOKEN})
    again = wallet.api.put(path, json={"platform": "android", "token": ANDROID_TOKEN})
    assert (created.status_code, again.status_code) == (201, 200)
    assert created.json() == {
        "kind": "push_device",
        "device_id": "phone-1",
        "platform": "android",
        "value": "…" + ANDROID_TOKEN[-6:],
        "status": "valid",
        "status_reason": None,
        "changed_at": created.json()["changed_at"],
    }
    # The token is sealed: the customer shows it masked only
    shown = wallet.api.get("/api/v1/customers/c1").text
    assert ANDROID_TOKEN not in shown
    # Bad input is a 422 naming the field; an unknown customer a 404
    refusals = {
        "platform": wallet.api.put(path, json={"platform": "windows", "token": ANDROID_TOKEN}),
        "token": wallet.api.put(path, json={"platform": "ios", "token": "not-hex-at-all-but-long-enough"}),
        "device_id": wallet.api.put(
            "/api/v1/customers/c1/devices/bad%20id", json={"platform": "ios", "token": IOS_TOKEN}
        ),
    }
    assert {name: answer.status_code for name, answer in refusals.items()} == dict.fromkeys(refusals, 422)
    assert refusals["token"].json()["error"]["field"] == "token"
    missing = wallet.api.put("/api/v1/customers/nobody/devices/d1", json={"platform": "ios", "token": IOS_TOKEN})
    assert missing.json()["error"]["code"] == "customer_not_found"
    # Deleting forgets it; deleting again is a 404
    assert wallet.api.delete(path).status_code == 204
    gone = wallet.api.delete(path)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "device_not_found")


def test_push_goes_to_android_through_fcm_and_to_ios_through_apns(wallet: Wallet) -> None:
    _push_customer(wallet, "android-user")
    _push_customer(wallet, "ios-user")
    wallet.api.put("/api/v1/customers/android-user/devices/a1", json={"platform": "android", "token": ANDROID_TOKEN})
    wallet.api.put("/api/v1/customers/ios-user/devices/i1", json={"platform": "ios", "token": IOS_TOKEN})
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["push", "email"])
    assert (
        wallet.api.post(
            "/api/v1/events", json={"events": [transfer("e1", "android-user"), transfer("e2", "ios-user")]}
        ).status_code
        == 200
    )
    wallet.clock.advance(dt.timedelta(minutes=31))
    Worker(wallet.runtime).run_until_idle()
    # FCM got the Android one with its collapse key per follow-up; APNs the iOS one, alert, collapsed
    [android] = wallet.fcm.messages
    assert android.body["message"]["token"] == ANDROID_TOKEN
    assert android.body["message"]["android"]["collapse_key"].startswith("followup-")
    [ios] = wallet.apns.requests
    assert ios.path == f"/3/device/{IOS_TOKEN}"
    assert ios.headers["apns-push-type"] == "alert"
    assert ios.headers["apns-collapse-id"].startswith("followup-")
    assert ios.token_claims is not None  # the ES256 provider token verified with the public key
    providers = {f["customer_id"]: f["messages"][0]["attempts"][0]["provider"] for f in wallet.followups()}
    assert providers == {"android-user": "fcm", "ios-user": "apns"}


def test_an_unregistered_token_marks_the_device_and_the_followup_moves_to_email(wallet: Wallet) -> None:
    _push_customer(wallet)
    wallet.api.put("/api/v1/customers/c1/devices/a1", json={"platform": "android", "token": ANDROID_TOKEN})
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["push", "email"], recontact_days=0)
    wallet.fcm.answers.append(fcm_error(404, "NOT_FOUND", error_code="UNREGISTERED"))
    wallet.invite("e1")
    # Then the device is unregistered, and the follow-up went on by email
    [device] = [p for p in wallet.api.get("/api/v1/customers/c1").json()["contact_points"] if p["device_id"] == "a1"]
    assert (device["status"], device["status_reason"]) == ("unregistered", "UNREGISTERED")
    [followup] = wallet.followups()
    assert [(m["channel"], m["state"]) for m in followup["messages"]] == [("push", "failed"), ("email", "accepted")]
    assert followup["messages"][0]["reason"] == "unreachable"


def test_apns_410_marks_the_device_and_a_new_token_makes_it_reachable_again(wallet: Wallet) -> None:
    _push_customer(wallet)
    wallet.api.put("/api/v1/customers/c1/devices/i1", json={"platform": "ios", "token": IOS_TOKEN})
    make_survey(wallet.runtime)
    make_strategy(wallet.runtime, channels=["push"], recontact_days=0)
    wallet.apns.answers.append(apns_reason(410, "Unregistered"))
    wallet.invite("e1")
    [device] = wallet.api.get("/api/v1/customers/c1").json()["contact_points"][-1:]
    assert device["status"] == "unregistered"
    # A second follow-up is refused as unreachable at planning (before any budget is looked at)
    wallet.invite("e2")
    second = next(f for f in wallet.followups() if f["event_id"] == "e2")
    assert (second["status"], second["reason"]) == ("suppressed", "unreachable")
    # Once the app registers a new token, the device is valid again
    new_token = "f0e1d2c3" * 8
    answer = wallet.api.put("/api/v1/customers/c1/devices/i1", json={"platform": "ios", "token": new_token})
    assert answer.json()["status"] == "valid"
