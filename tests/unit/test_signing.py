from __future__ import annotations

import pytest

from loadbay.blobs import UrlSigner
from loadbay.errors import BadSignature

signer = UrlSigner(b"secret", "http://h")


def test_signature_is_bound_to_method_object_and_expiry() -> None:
    sig = signer.sign("PUT", "batches/1/inputs/data", 2000)
    signer.verify("PUT", "batches/1/inputs/data", "2000", sig, now=1000)
    for method, key, expires in [
        ("GET", "batches/1/inputs/data", "2000"),
        ("PUT", "batches/2/inputs/data", "2000"),
        ("PUT", "batches/1/inputs/data", "2001"),
    ]:
        with pytest.raises(BadSignature, match="does not match"):
            signer.verify(method, key, expires, sig, now=1000)


def test_expired_signature_is_refused() -> None:
    sig = signer.sign("PUT", "k", 2000)
    with pytest.raises(BadSignature, match="expired"):
        signer.verify("PUT", "k", "2000", sig, now=2001)


def test_garbage_expiry_is_refused() -> None:
    with pytest.raises(BadSignature, match="expiry"):
        signer.verify("PUT", "k", "soon", "abc")


def test_url_carries_method_expiry_and_signature() -> None:
    url = signer.url("batches/1/inputs/a b.csv", "PUT", 60)
    assert url.startswith("http://h/v1/blobs/batches/1/inputs/a%20b.csv?method=PUT&expires=")
    assert "&signature=" in url


def test_a_signature_that_is_not_ascii_is_refused_as_not_matching() -> None:
    """(a signature=%C3%A9 in a signed URL's query was a 500: compare_digest raised TypeError)"""
    for signature in ("é", "\udcff", signer.sign("PUT", "k", 2000)[:-1] + "é"):
        with pytest.raises(BadSignature, match="does not match"):
            signer.verify("PUT", "k", "2000", signature, now=1000)
