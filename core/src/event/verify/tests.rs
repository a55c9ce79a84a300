//! Unit tests of signature checking against independent HMACs: formats, digests, rotation,
//! several signatures in a header, timestamp templates, and malformed headers named.

use super::*;
use hyper::header::HeaderValue;

fn hex_scheme() -> SignatureScheme {
    SignatureScheme {
        header: HeaderName::from_static("x-sig"),
        encoding: Encoding::Hex,
        prefix: String::new(),
        signed: Signed::Body,
        algorithm: Algorithm::Sha256,
        several: false,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    map
}

// Reference value: python3 -c "import hmac,hashlib;print(hmac.new(b'key',b'body',hashlib.sha256).hexdigest())"
const KEY_BODY_HEX: &str = "515aae133b435d4000956731f68ae5cf5eb85d4f0dc6a546d2bfcd3595ec1ae1";

#[test]
fn hex_signature_matches_an_independent_hmac() {
    let scheme = hex_scheme();
    let expected = scheme.sign(
        b"key",
        &Signable {
            body: b"body",
            timestamp: None,
            delivery_id: None,
        },
    );
    assert_eq!(expected, KEY_BODY_HEX);
    let secrets = [Secret::new("key")];
    let h = headers(&[("x-sig", &expected)]);
    assert_eq!(
        scheme.verify(&h, b"body", None, &secrets, SystemTime::now()),
        Ok(())
    );
}

#[test]
fn any_active_secret_verifies_and_others_do_not() {
    let scheme = hex_scheme();
    let sig = scheme.sign(
        b"old",
        &Signable {
            body: b"{}",
            timestamp: None,
            delivery_id: None,
        },
    );
    let h = headers(&[("x-sig", &sig)]);
    let now = SystemTime::now();
    let rotated = [Secret::new("new"), Secret::new("old")];
    assert_eq!(scheme.verify(&h, b"{}", None, &rotated, now), Ok(()));
    assert_eq!(
        scheme.verify(&h, b"{}", None, &[Secret::new("new")], now),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        scheme.verify(&h, b"{ }", None, &rotated, now),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn missing_and_malformed_headers_are_named() {
    let scheme = SignatureScheme {
        prefix: "sha256=".into(),
        ..hex_scheme()
    };
    let now = SystemTime::now();
    let s = [Secret::new("k")];
    assert_eq!(
        scheme.verify(&HeaderMap::new(), b"", None, &s, now),
        Err(VerifyError::Missing(HeaderName::from_static("x-sig")))
    );
    for (value, reason) in [
        ("abcd", "expected prefix is missing"),
        ("sha256=zz", "not hexadecimal"),
        ("sha256=abcd", "wrong length for the HMAC"),
    ] {
        let err = scheme
            .verify(&headers(&[("x-sig", value)]), b"", None, &s, now)
            .unwrap_err();
        assert_eq!(
            err,
            VerifyError::Malformed {
                header: HeaderName::from_static("x-sig"),
                reason
            }
        );
        assert_eq!(err.code(), "signature_malformed");
    }
}

#[test]
fn templates_cover_timestamp_and_id_and_refuse_stale_ones() {
    let scheme = SignatureScheme {
        header: HeaderName::from_static("webhook-signature"),
        encoding: Encoding::Base64,
        prefix: "v1,".into(),
        signed: Signed::Template {
            template: "{id}.{timestamp}.{body}".into(),
            timestamp_header: Some(HeaderName::from_static("webhook-timestamp")),
            tolerance: Some(Duration::from_secs(300)),
        },
        algorithm: Algorithm::Sha256,
        several: false,
    };
    // Reference: the Standard Webhooks example secret and message.
    let secret = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    let signable = Signable {
        body: br#"{"test": 2432232314}"#,
        timestamp: Some("1614265330"),
        delivery_id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
    };
    assert_eq!(
        scheme.sign(&secret, &signable),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let h = headers(&[
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        ("webhook-timestamp", "1614265330"),
    ]);
    let secrets = [Secret::new(&secret)];
    let at = UNIX_EPOCH + Duration::from_secs(1614265330 + 10);
    let id = Some("msg_p5jXN8AQM9LWM0D4loKWxJek");
    assert_eq!(scheme.verify(&h, signable.body, id, &secrets, at), Ok(()));
    let late = UNIX_EPOCH + Duration::from_secs(1614265330 + 301);
    assert_eq!(
        scheme.verify(&h, signable.body, id, &secrets, late),
        Err(VerifyError::Stale {
            age_secs: 301,
            tolerance_secs: 300
        })
    );
}

#[test]
fn sha1_and_sha512_match_independent_hmacs() {
    // python3: hmac.new(b'key', b'body', hashlib.sha1 / hashlib.sha512)
    let body = Signable {
        body: b"body",
        timestamp: None,
        delivery_id: None,
    };
    let sha1 = SignatureScheme {
        algorithm: Algorithm::Sha1,
        ..hex_scheme()
    };
    assert_eq!(
        sha1.sign(b"key", &body),
        "70bbf6819d1037aa94ca7e7f537cbea25fe49283"
    );
    let sha512 = SignatureScheme {
        algorithm: Algorithm::Sha512,
        encoding: Encoding::Base64,
        ..hex_scheme()
    };
    let expected =
        "tx6CtC7OJEGCquAPXEGNhLWwrIRIdHZeZY6RsmJhsy3znp/L9EQk0OO1O6sZLnikk2Ik7JQM+VMWS3CqzdTIRQ==";
    assert_eq!(sha512.sign(b"key", &body), expected);
    let secrets = [Secret::new("key")];
    let now = SystemTime::now();
    let h = headers(&[("x-sig", expected)]);
    assert_eq!(sha512.verify(&h, b"body", None, &secrets, now), Ok(()));
    // A SHA-256 MAC is the wrong length for SHA-512.
    let h = headers(&[("x-sig", "Vv3kQImLIEbu5vWIFuqBxXgNa9XTTRzkG5nVTtrLxLg=")]);
    assert_eq!(
        sha512.verify(&h, b"body", None, &secrets, now),
        Err(VerifyError::Malformed {
            header: HeaderName::from_static("x-sig"),
            reason: "wrong length for the HMAC"
        })
    );
}

#[test]
fn several_signatures_in_one_header_any_one_matches() {
    let scheme = SignatureScheme {
        encoding: Encoding::Base64,
        prefix: "v1,".into(),
        several: true,
        ..hex_scheme()
    };
    // python3: base64 of hmac.new(b'new', b'{}', hashlib.sha256)
    let new = "v1,Vv3kQImLIEbu5vWIFuqBxXgNa9XTTRzkG5nVTtrLxLg=";
    let secrets = [Secret::new("new")];
    let now = SystemTime::now();
    for value in [
        format!("v1,AAAA {new}"),
        format!("{new} v2,whatever"),
        format!("v1a,xyz  {new}"),
    ] {
        let h = headers(&[("x-sig", &value)]);
        assert_eq!(
            scheme.verify(&h, b"{}", None, &secrets, now),
            Ok(()),
            "{value}"
        );
    }
    let h = headers(&[(
        "x-sig",
        "v1,AAAA v1,Vv3kQImLIEbu5vWIFuqBxXgNa9XTTRzkG5nVTtrLxLg=",
    )]);
    assert_eq!(
        scheme.verify(&h, b"{ }", None, &secrets, now),
        Err(VerifyError::Mismatch)
    );
    let h = headers(&[("x-sig", "v2,abc v3,def")]);
    assert_eq!(
        scheme.verify(&h, b"{}", None, &secrets, now),
        Err(VerifyError::Malformed {
            header: HeaderName::from_static("x-sig"),
            reason: "expected prefix is missing"
        })
    );
}
