"""C2PA Content Credentials evidence, on files signed in the test with a throw-away certificate chain."""

from __future__ import annotations

import io
import json

import c2pa
import numpy as np
import piexif
import pytest
from PIL import Image, PngImagePlugin

from c2pa_certs import SigningMaterial, make_es256_signing_material
from pixelsleuth.evidence import load_source
from pixelsleuth.evidence.c2pa import (
    ManifestStore,
    c2pa_evidence,
    digital_source_type,
    may_carry_credentials,
    summarize_manifest_store,
)
from pixelsleuth.evidence.record import POINTS_TO, Evidence
from pixelsleuth.intake import load_image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def material() -> SigningMaterial:
    return make_es256_signing_material()


@pytest.fixture(scope="session")
def ca_pem(material: SigningMaterial) -> str:
    end = b"-----END CERTIFICATE-----\n"
    return material.chain_pem.split(end)[1].decode() + end.decode()  # the root, second in the chain


def encode(fmt: str, seed: int = 0, size: tuple[int, int] = (96, 128)) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.BICUBIC))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def manifest(source_type: str, agent: str = "Test Diffusion 1.0") -> dict:
    return {
        "claim_generator_info": [{"name": "pixelsleuth-tests", "version": "0.1"}],
        "title": "generated",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "softwareAgent": agent,
                            "digitalSourceType": IPTC + source_type,
                        }
                    ]
                },
            }
        ],
    }


def sign(
    data: bytes,
    fmt: str,
    definition: dict,
    material: SigningMaterial,
    ingredient: tuple[dict, bytes] | None = None,
) -> bytes:
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, material.chain_pem, material.key_pem, None)
    )
    builder = c2pa.Builder(definition)
    if ingredient is not None:
        builder.add_ingredient(ingredient[0], "image/jpeg", io.BytesIO(ingredient[1]))
    destination = io.BytesIO()
    builder.sign(signer, MIME[fmt], io.BytesIO(data), destination)
    return destination.getvalue()


def flip_entropy_bytes(jpeg: bytes, count: int = 24) -> bytes:
    """Change bytes of the entropy-coded scan without creating markers, so the file still decodes."""
    data = bytearray(jpeg)
    start = jpeg.rfind(b"\xff\xda") + 40
    changed = 0
    for i in range(start, len(data) - 2):
        if data[i] not in (0x00, 0xFE, 0xFF) and data[i - 1] != 0xFF:
            data[i] ^= 0x01
            changed += 1
            if changed == count:
                break
    assert changed == count
    return bytes(data)


def by_points_to(evidence: list[Evidence], points_to: str) -> list[Evidence]:
    return [item for item in evidence if item.points_to == points_to]


@pytest.fixture(scope="session")
def ai_jpeg(material: SigningMaterial) -> bytes:
    parent = encode("JPEG", seed=7)
    return sign(
        encode("JPEG", seed=1),
        "JPEG",
        manifest("trainedAlgorithmicMedia"),
        material,
        ingredient=({"title": "sketch.jpg", "relationship": "componentOf"}, parent),
    )


# --- tests ----------------------------------------------------------------------------------------


def test_registered_under_c2pa() -> None:
    assert load_source("c2pa") is c2pa_evidence


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_file_without_credentials_gives_nothing(fmt: str) -> None:
    assert c2pa_evidence(load_image(encode(fmt))) == []


def test_marker_text_without_manifest_gives_nothing(tmp_path) -> None:
    path = tmp_path / "comment.jpg"
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(path, "JPEG", comment=b"see c2pa and jumb")
    data = path.read_bytes()
    assert b"c2pa" in data
    assert c2pa_evidence(load_image(data)) == []


def test_only_the_jpeg_header_is_searched_for_markers(ai_jpeg: bytes) -> None:
    plain = encode("JPEG", seed=8)
    assert may_carry_credentials(ai_jpeg)
    assert not may_carry_credentials(plain)
    # Text after the scan is not where C2PA stores JPEG credentials: not a reason to open the reader.
    assert not may_carry_credentials(plain + b"jumb c2pa")
    assert c2pa_evidence(load_image(plain + b"jumb c2pa")) == []
    # A header that does not parse as marker segments falls back to searching everything.
    assert may_carry_credentials(b"\xff\xd8\x00\x00 jumb")


def test_png_chunk_list_is_searched_not_the_image_data(tmp_path) -> None:
    plain = encode("PNG", seed=11)
    assert not may_carry_credentials(plain)
    path = tmp_path / "text.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "mentions c2pa")
    Image.open(io.BytesIO(plain)).save(path, "PNG", pnginfo=info)
    assert may_carry_credentials(path.read_bytes())
    assert c2pa_evidence(load_image(path.read_bytes())) == []  # no manifest behind the word
    assert may_carry_credentials(plain[:-30] + b"jumb")  # broken chunk list: search everything


def test_credentials_after_an_exif_thumbnail_are_found(material: SigningMaterial) -> None:
    thumbnail = encode("JPEG", seed=9, size=(24, 32))
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Pixelsleuth"}, "1st": {}, "thumbnail": thumbnail})
    buffer = io.BytesIO()
    Image.open(io.BytesIO(encode("JPEG", seed=10))).save(buffer, "JPEG", exif=exif, quality=92)
    source = buffer.getvalue()
    assert source.count(b"\xff\xda") >= 2  # the thumbnail's own start of scan sits inside APP1
    signed = sign(source, "JPEG", manifest("trainedAlgorithmicMedia"), material)
    assert len(by_points_to(c2pa_evidence(load_image(signed)), "ai-generated")) == 1


def test_signed_ai_jpeg_reports_untrusted_signer_and_ai_claim(ai_jpeg: bytes) -> None:
    evidence = c2pa_evidence(load_image(ai_jpeg))
    overview = evidence[0]
    assert overview.source == "c2pa"
    assert overview.data["signature_state"] == "untrusted"
    assert "trust list" in overview.finding and "untrusted" in overview.finding
    assert "pixelsleuth-tests" in overview.data["claim_generator"]
    assert overview.data["signature"]["common_name"] == "Pixelsleuth Test Signer"
    assert overview.data["signature"]["issuer"] == "Pixelsleuth Test CA"
    assert overview.data["actions"][0]["name"] == "created"
    assert overview.data["actions"][0]["software_agent"] == "Test Diffusion 1.0"
    assert overview.data["ingredients"][0]["title"] == "sketch.jpg"
    assert overview.data["ingredients"][0]["relationship"] == "componentOf"
    json.dumps([item.to_dict() for item in evidence])  # data must be JSON-serialisable

    (claim,) = by_points_to(evidence, "ai-generated")
    assert 0.75 <= claim.strength < 0.95  # anyone can sign: lower than a trusted signature
    assert claim.data["term"] == "trainedAlgorithmicMedia"
    assert "generative AI" in claim.finding and "untrusted" in claim.finding


def test_trusted_signer_gets_full_strength(ai_jpeg: bytes, ca_pem: str) -> None:
    evidence = c2pa_evidence(load_image(ai_jpeg), trust_anchors=ca_pem)
    assert evidence[0].data["signature_state"] == "trusted"
    assert "intact" in evidence[0].finding and "untrusted" not in evidence[0].finding
    (claim,) = by_points_to(evidence, "ai-generated")
    assert claim.strength == pytest.approx(0.95)


def test_signed_png_is_read(material: SigningMaterial) -> None:
    signed = sign(encode("PNG", seed=3), "PNG", manifest("trainedAlgorithmicMedia"), material)
    evidence = c2pa_evidence(load_image(signed))
    assert evidence[0].data["validation_state"] == "Valid"
    assert len(by_points_to(evidence, "ai-generated")) == 1


def test_changed_pixels_break_the_credentials(ai_jpeg: bytes) -> None:
    tampered = flip_entropy_bytes(ai_jpeg)
    Image.open(io.BytesIO(tampered)).load()  # still a decodable JPEG
    evidence = c2pa_evidence(load_image(tampered))
    overview = evidence[0]
    assert overview.data["signature_state"] == "invalid"
    assert "assertion.dataHash.mismatch" in [item["code"] for item in overview.data["failures"]]
    assert overview.points_to == "manipulated"
    assert 0.4 <= overview.strength <= 0.6
    assert "changed after it was signed" in overview.finding
    (claim,) = by_points_to(evidence, "ai-generated")
    assert claim.strength < 0.4  # a broken credential's claim is weak
    assert "no longer validate" in claim.finding


def test_digital_capture_points_to_authentic(material: SigningMaterial, ca_pem: str) -> None:
    signed = sign(encode("JPEG", seed=5), "JPEG", manifest("digitalCapture", agent="Camera 1.0"), material)
    untrusted = by_points_to(c2pa_evidence(load_image(signed)), "authentic")
    trusted = by_points_to(c2pa_evidence(load_image(signed), trust_anchors=ca_pem), "authentic")
    assert len(untrusted) == 1 and len(trusted) == 1
    assert 0 < untrusted[0].strength < trusted[0].strength
    assert trusted[0].strength == pytest.approx(0.8)
    assert "captured from real life" in trusted[0].finding


def test_broken_digital_capture_claim_argues_nothing(material: SigningMaterial) -> None:
    signed = sign(encode("JPEG", seed=6), "JPEG", manifest("digitalCapture"), material)
    evidence = c2pa_evidence(load_image(flip_entropy_bytes(signed)))
    assert by_points_to(evidence, "authentic") == []
    assert evidence[0].points_to == "manipulated"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_remote_manifest_is_not_fetched(material: SigningMaterial, fmt: str) -> None:
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, material.chain_pem, material.key_pem, None)
    )
    builder = c2pa.Builder(manifest("digitalCapture"))
    builder.set_no_embed()
    builder.set_remote_url("http://192.0.2.1/credentials")  # TEST-NET-1: never routed
    destination = io.BytesIO()
    builder.sign(signer, MIME[fmt], io.BytesIO(encode(fmt)), destination)
    (evidence,) = c2pa_evidence(load_image(destination.getvalue()))
    assert evidence.points_to == "none"
    assert evidence.data["remote"] is True
    assert evidence.data["remote_url"] == "http://192.0.2.1/credentials"
    assert "online" in evidence.finding


def test_corrupt_credentials_never_raise(ai_jpeg: bytes) -> None:
    start = ai_jpeg.find(b"jumb")
    corrupt = ai_jpeg[: start + 40] + bytes(200) + ai_jpeg[start + 240 :]
    evidence = c2pa_evidence(load_image(corrupt))
    assert all(isinstance(item, Evidence) and item.points_to in POINTS_TO for item in evidence)
    assert evidence  # the markers are there, so something is reported
    json.dumps([item.to_dict() for item in evidence])


def test_edited_ai_image_reports_the_ingredient_claim(ai_jpeg: bytes, material: SigningMaterial) -> None:
    edit = {
        "claim_generator_info": [{"name": "Editor", "version": "2"}],
        "title": "edited",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.opened",
                            "softwareAgent": "Editor 2",
                            "parameters": {"ingredientIds": ["p"]},
                        },
                        {"action": "c2pa.color_adjustments"},
                    ]
                },
            }
        ],
    }
    parent = ({"title": "render.jpg", "relationship": "parentOf", "label": "p"}, ai_jpeg)
    evidence = c2pa_evidence(load_image(sign(ai_jpeg, "JPEG", edit, material, ingredient=parent)))
    overview = evidence[0]
    assert overview.data["manifest_count"] == 2
    assert [action["name"] for action in overview.data["actions"]] == ["opened", "color_adjustments"]
    assert overview.data["ingredient_manifests"][0]["ingredient_title"] == "render.jpg"
    (claim,) = by_points_to(evidence, "ai-generated")
    assert "ingredient" in claim.finding and "render.jpg" in claim.finding
    assert 0.6 <= claim.strength < 0.8


def test_summary_reads_ingredient_manifests_and_creative_work() -> None:
    store = {
        "active_manifest": "urn:active",
        "manifests": {
            "urn:active": {
                "claim_generator": "Photo Editor/2.0 c2pa-rs/0.30",
                "signature_info": {
                    "issuer": "Editor Inc",
                    "common_name": "Editor signing",
                    "time": "2024-05-01",
                },
                "assertions": [
                    {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.opened"}]}},
                    {
                        "label": "stds.schema-org.CreativeWork",
                        "data": {"@type": "CreativeWork", "digitalSourceType": IPTC + "humanEdits"},
                    },
                ],
                "ingredients": [
                    {"title": "render.png", "relationship": "parentOf", "active_manifest": "urn:parent"},
                ],
            },
            "urn:parent": {
                "claim_generator_info": [{"name": "Image Generator", "version": "3"}],
                "assertions": [
                    {
                        "label": "c2pa.actions.v2",
                        "data": {
                            "actions": [
                                {
                                    "action": "c2pa.created",
                                    "softwareAgent": {"name": "Diffuser", "version": "1"},
                                    "digitalSourceType": IPTC + "trainedAlgorithmicMedia",
                                }
                            ]
                        },
                    }
                ],
            },
        },
        "validation_state": "Trusted",
    }
    summary = summarize_manifest_store(ManifestStore(store=store, validation_state="Trusted"))
    assert summary["claim_generator"] == "Photo Editor/2.0 c2pa-rs/0.30"
    assert summary["signature"]["time"] == "2024-05-01"
    assert summary["signature_state"] == "trusted"
    assert [item["term"] for item in summary["digital_source_types"]] == ["humanEdits"]
    (parent,) = summary["ingredient_manifests"]
    assert parent["claim_generator"] == "Image Generator 3"
    assert parent["relationship"] == "parentOf"
    assert [item["term"] for item in parent["digital_source_types"]] == ["trainedAlgorithmicMedia"]
    json.dumps(summary)


@pytest.mark.parametrize(
    ("value", "term"),
    [
        (IPTC + "trainedAlgorithmicMedia", "trainedAlgorithmicMedia"),
        ("https://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture/", "digitalCapture"),
        ("digsrctype:compositeWithTrainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"),
        ("algorithmicMedia", "algorithmicMedia"),
        ("TRAINEDALGORITHMICMEDIA", "trainedAlgorithmicMedia"),
        ("http://c2pa.org/digitalsourcetype/trainedAlgorithmicData", "trainedAlgorithmicData"),
    ],
)
def test_digital_source_type_lookup(value: str, term: str) -> None:
    entry = digital_source_type(value)
    assert entry is not None and entry["term"] == term


@pytest.mark.parametrize("value", ["", "photo", "http://example.com/trainedAlgorithmicMedia", None])
def test_digital_source_type_unknown(value) -> None:
    assert digital_source_type(value) is None


def test_digital_source_type_table_is_complete_and_consistent() -> None:
    iptc_terms = [
        "digitalCapture",
        "computationalCapture",
        "negativeFilm",
        "positiveFilm",
        "print",
        "minorHumanEdits",
        "humanEdits",
        "algorithmicallyEnhanced",
        "softwareImage",
        "digitalArt",
        "digitalCreation",
        "dataDrivenMedia",
        "trainedAlgorithmicMedia",
        "algorithmicMedia",
        "screenCapture",
        "virtualRecording",
        "composite",
        "compositeCapture",
        "compositeSynthetic",
        "compositeWithTrainedAlgorithmicMedia",
    ]
    for term in iptc_terms:
        entry = digital_source_type(IPTC + term)
        assert entry is not None, term
        assert entry["url"] == IPTC + term
        assert entry["points_to"] in POINTS_TO
        assert 0.0 <= entry["base_strength"] <= 1.0
        assert entry["meaning"] and entry["label"]
        assert (entry["points_to"] == "none") == (entry["base_strength"] == 0.0), term
    assert digital_source_type("trainedAlgorithmicMedia")["base_strength"] == pytest.approx(0.95)
    assert digital_source_type("digitalCapture")["points_to"] == "authentic"
