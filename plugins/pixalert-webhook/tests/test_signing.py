"""Standard Webhooks v1.0.0 signatures: the spec's test vector, verify() and its refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pixalert.channels import Secret
from pixalert_webhook import WebhookVerificationError, generate_secret, sign, verify
from pixalert_webhook._signing import decode_secret

# The reference library's test vector (standard-webhooks, libraries/python/tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = VECTOR_SIG, ts: int = VECTOR_TS) -> dict[str, str]:
    return {"webhook-id": VECTOR_ID, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_sign_matches_the_reference_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY.encode()) == VECTOR_SIG


def test_verify_accepts_the_vector_and_returns_the_payload() -> None:
    payload = verify(VECTOR_SECRET, headers(), VECTOR_BODY, now=VECTOR_TS)
    assert payload == {"test": 2432232314}


@pytest.mark.parametrize(
    "form",
    [
        VECTOR_SECRET,
        VECTOR_SECRET.removeprefix("whsec_"),
        Secret(VECTOR_SECRET),
        base64.b64decode(VECTOR_SECRET.removeprefix("whsec_")),
    ],
    ids=["whsec", "bare-base64", "Secret", "raw-bytes"],
)
def test_verify_accepts_every_secret_form(form: object) -> None:
    assert verify(form, headers(), VECTOR_BODY, now=VECTOR_TS) == {"test": 2432232314}  # type: ignore[arg-type]


def test_header_names_are_case_insensitive() -> None:
    upper = {k.title(): v for k, v in headers().items()}
    assert verify(VECTOR_SECRET, upper, VECTOR_BODY, now=VECTOR_TS)


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_timestamp_is_rejected(skew: int) -> None:
    with pytest.raises(WebhookVerificationError, match=r"timestamp too (old|new)"):
        verify(VECTOR_SECRET, headers(), VECTOR_BODY, now=VECTOR_TS - skew)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamp_within_tolerance_is_accepted(skew: int) -> None:
    assert verify(VECTOR_SECRET, headers(), VECTOR_BODY, now=VECTOR_TS + skew)


def test_tolerance_is_configurable() -> None:
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(VECTOR_SECRET, headers(), VECTOR_BODY, now=VECTOR_TS + 11, tolerance=10)


def test_verify_uses_the_current_time_by_default() -> None:
    # The vector's timestamp is from 2021: stale today.
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(VECTOR_SECRET, headers(), VECTOR_BODY)


@pytest.mark.parametrize(
    "signature",
    [
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",  # one character off
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # right value, unknown version
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # ed25519 scheme, not ours
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # no version
        "v1,",
        "v1,not base64 at all",
    ],
)
def test_bad_signature_is_rejected(signature: str) -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, headers(signature), VECTOR_BODY, now=VECTOR_TS)


def test_tampered_body_or_id_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, headers(), '{"test": 2432232315}', now=VECTOR_TS)
    changed = headers() | {"webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(VECTOR_SECRET, changed, VECTOR_BODY, now=VECTOR_TS)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(generate_secret(), headers(), VECTOR_BODY, now=VECTOR_TS)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected_by_name(missing: str) -> None:
    incomplete = {k: v for k, v in headers().items() if k != missing}
    with pytest.raises(WebhookVerificationError, match=f"missing {missing} header"):
        verify(VECTOR_SECRET, incomplete, VECTOR_BODY, now=VECTOR_TS)


@pytest.mark.parametrize("stamp", ["hello", "1614265330.5", "-1614265330", ""])
def test_non_integer_timestamp_is_rejected(stamp: str) -> None:
    bad = headers() | {"webhook-timestamp": stamp}
    with pytest.raises(WebhookVerificationError):
        verify(VECTOR_SECRET, bad, VECTOR_BODY, now=VECTOR_TS)


def test_rotated_keys_several_signatures_one_valid() -> None:
    sigs = " ".join(
        [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            VECTOR_SIG,
        ]
    )
    assert verify(VECTOR_SECRET, headers(sigs), VECTOR_BODY, now=VECTOR_TS)


def test_rotation_sender_signs_with_both_receivers_with_either_verify() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"type": "alert.firing"}'
    both = sign([new, old], "msg_1", VECTOR_TS, body)
    assert len(both.split()) == 2
    hdrs = {"webhook-id": "msg_1", "webhook-timestamp": str(VECTOR_TS), "webhook-signature": both}
    assert verify(old, hdrs, body, now=VECTOR_TS)
    assert verify(new, hdrs, body, now=VECTOR_TS)
    # A receiver mid-rotation may hold both secrets and accept either signature.
    only_old = hdrs | {"webhook-signature": sign(old, "msg_1", VECTOR_TS, body)}
    assert verify([new, old], only_old, body, now=VECTOR_TS)
    with pytest.raises(WebhookVerificationError):
        verify([generate_secret()], only_old, body, now=VECTOR_TS)


def test_body_that_is_not_json_is_rejected_after_the_signature() -> None:
    body = "not json"
    sig = sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, body)
    with pytest.raises(WebhookVerificationError, match="not valid JSON"):
        verify(VECTOR_SECRET, headers(sig), body, now=VECTOR_TS)


def test_errors_never_contain_the_secret() -> None:
    secret = generate_secret()
    bare = secret.removeprefix("whsec_")
    cases = [
        headers("v1,AAAA"),
        {"webhook-id": VECTOR_ID},
        headers(ts=1),
    ]
    for hdrs in cases:
        with pytest.raises(WebhookVerificationError) as info:
            verify(secret, hdrs, VECTOR_BODY, now=VECTOR_TS)
        assert bare not in str(info.value) and bare not in repr(info.value)
    with pytest.raises(WebhookVerificationError) as info:
        verify("whsec_%%%not-base64-secret%%%", headers(), VECTOR_BODY, now=VECTOR_TS)
    assert "not-base64-secret" not in str(info.value)
    assert info.value.__cause__ is None


def test_webhook_id_with_a_dot_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="webhook-id"):
        sign(VECTOR_SECRET, "msg.1", VECTOR_TS, VECTOR_BODY)
    bad = headers() | {"webhook-id": "msg.1"}
    with pytest.raises(WebhookVerificationError, match="webhook-id"):
        verify(VECTOR_SECRET, bad, VECTOR_BODY, now=VECTOR_TS)


def test_generate_secret_makes_strict_valid_secrets() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(decode_secret(secret, strict=True)) == 32
    assert len(decode_secret(generate_secret(24), strict=True)) == 24
    assert generate_secret() != generate_secret()
    with pytest.raises(ValueError, match="24 to 64"):
        generate_secret(8)


def test_decode_secret_strict_checks_the_key_length() -> None:
    short = "whsec_" + base64.b64encode(b"x" * 8).decode()
    assert decode_secret(short) == b"x" * 8
    with pytest.raises(ValueError, match="24 to 64 random bytes, got 8 bytes"):
        decode_secret(short, strict=True)


def test_the_channels_prepared_signer_matches_sign() -> None:
    from pixalert_webhook._signing import _Signer

    keys = [decode_secret(VECTOR_SECRET), decode_secret(generate_secret())]
    signer = _Signer(keys[:1])
    assert signer(VECTOR_ID.encode(), str(VECTOR_TS).encode(), VECTOR_BODY.encode()) == (
        VECTOR_SIG.encode()
    )
    both = _Signer(keys)(VECTOR_ID.encode(), b"1", b"{}")
    # One signature per key, each the HMAC the standard defines (computed here directly).
    signed = f"{VECTOR_ID}.1.{{}}".encode()
    assert both.decode() == " ".join(
        "v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode()
        for k in keys
    )
    with pytest.raises(ValueError, match="webhook-id"):
        signer(b"msg.1", b"1", b"{}")
