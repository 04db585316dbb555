"""C2PA Content Credentials: is a signed manifest there, is it intact, and what does it claim?

The manifest store is read and validated by c2pa-python (the C2PA reference SDK). Files without a
C2PA marker cost a byte search (of the header or chunk list only, for JPEG and PNG); the native
library is loaded only when a file carries credentials. Remote manifests are never fetched and
certificate revocation is not checked online.

Trust: without a configured trust list every signer is "untrusted" (c2pa reports
``signingCredential.untrusted``), which is the honest default: anyone can make a certificate and sign
anything. Pass ``trust_anchors`` (PEM) to ``c2pa_evidence`` to trust known certificate authorities.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from pixelsleuth.evidence.record import Evidence, PointsTo
from pixelsleuth.intake.image import LoadedImage
from pixelsleuth.intake.jpeg import header_segments
from pixelsleuth.intake.text import clean_text, loads_json

SOURCE = "c2pa"

# JUMBF box type and C2PA label of an embedded manifest store; the XMP property that points to a
# remote one.
CREDENTIAL_MARKERS: tuple[bytes, ...] = (b"jumb", b"c2pa", b"dcterms:provenance")

MIME_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}

# Validation codes (C2PA specification, "validation status codes") meaning the signed content or the
# claim no longer matches what was signed.
TAMPER_CODES: frozenset[str] = frozenset(
    {
        "assertion.dataHash.mismatch",
        "assertion.boxesHash.mismatch",
        "assertion.bmffHash.mismatch",
        "assertion.collectionHash.mismatch",
        "assertion.hashedURI.mismatch",
        "claimSignature.mismatch",
    }
)
UNTRUSTED_CODE = "signingCredential.untrusted"

# How much of a claim's base strength survives each signature state. A claim that incriminates the
# image (AI-made, edited) costs a forger nothing to omit, so a self-made certificate barely weakens
# it; a claim of authenticity is exactly what a forger would sign with a self-made certificate.
CLAIM_WEIGHT: dict[str, dict[str, float]] = {
    "incriminating": {"trusted": 1.0, "valid": 1.0, "untrusted": 0.85, "invalid": 0.3, "unknown": 0.5},
    "authentic": {"trusted": 1.0, "valid": 1.0, "untrusted": 0.4, "invalid": 0.0, "unknown": 0.2},
}
INGREDIENT_WEIGHT = 0.9  # a claim about an ingredient says a little less about the image itself
TAMPERED_STRENGTH = 0.55  # credentials whose hashes no longer match: altered after signing
BROKEN_STRENGTH = 0.3  # credentials that fail validation for another reason

_IPTC_PREFIXES = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/",
    "https://cv.iptc.org/newscodes/digitalsourcetype/",
)
_C2PA_PREFIXES = ("http://c2pa.org/digitalsourcetype/", "https://c2pa.org/digitalsourcetype/")
_ACTIONS_LABEL = re.compile(r"^c2pa\.actions(\.v\d+)?(__\d+)?$")
_MAX_ASSERTION_DEPTH = 32  # digital source types sit a few levels deep; hostile nesting goes deeper


# ---------------------------------------------------------------------------------------------------
# Digital source types (shared with the metadata source through digital_source_type()).


@cache
def _digital_source_types() -> dict[str, dict[str, Any]]:
    text = (
        resources.files("pixelsleuth.evidence").joinpath("data/digital_source_types.json").read_text("utf-8")
    )
    return json.loads(text)["terms"]


@cache
def _terms_by_lowercase() -> dict[str, str]:
    return {term.lower(): term for term in _digital_source_types()}


def digital_source_type(term_or_url: str) -> dict[str, Any] | None:
    """Describe an IPTC (or C2PA) digital source type.

    Parameters
    ----------
    term_or_url : str
        A vocabulary URL (``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``,
        ``http://c2pa.org/digitalsourcetype/empty``), a QCode (``digsrctype:digitalCapture``) or a
        bare term (``trainedAlgorithmicMedia``).

    Returns
    -------
    dict or None
        ``term``, ``url``, ``label``, ``meaning`` (completes "The image ..."), ``points_to``,
        ``base_strength`` and, for retired terms, ``retired``; None for anything unknown.

    Examples
    --------
    >>> digital_source_type("digsrctype:trainedAlgorithmicMedia")["points_to"]
    'ai-generated'
    """
    if not isinstance(term_or_url, str):
        return None
    value = term_or_url.strip().rstrip("/")
    for prefix in (*_IPTC_PREFIXES, *_C2PA_PREFIXES, "digsrctype:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
            break
    else:
        if "/" in value or ":" in value:
            return None
    term = value if value in _digital_source_types() else _terms_by_lowercase().get(value.lower())
    if term is None:
        return None
    return {"term": term, **_digital_source_types()[term]}


# ---------------------------------------------------------------------------------------------------
# Reading the manifest store.


def _jpeg_header_end(data: bytes) -> int:
    """Offset of a JPEG's first start-of-scan marker.

    C2PA embeds JPEG credentials in APP11 segments of the header (and remote references in XMP), so
    only the header needs searching, not the entropy-coded scan. Returns ``len(data)`` when no scan
    is found, so the caller falls back to searching everything.
    """
    for segment in header_segments(data):
        if segment.marker == 0xDA:
            return segment.offset
    return len(data)


def _png_marker_chunks(data: bytes) -> bool | None:
    """Whether a PNG has a C2PA chunk (``caBX``) or a text chunk mentioning C2PA; None if unparsable.

    Walking the chunk list skips the image data, which would otherwise dominate a byte search.
    """
    position, size = 8, len(data)
    while position + 8 <= size:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > size:
            return None
        if kind == b"caBX":
            return True
        if kind in (b"iTXt", b"tEXt") and any(
            data.find(marker, position + 8, end - 4) >= 0 for marker in CREDENTIAL_MARKERS
        ):
            return True
        if kind == b"IEND":
            return False
        position = end
    return None


def may_carry_credentials(data: bytes) -> bool:
    """Cheap test for C2PA markers where C2PA embeds manifests or points to remote ones.

    JPEG: the header segments (APP11, XMP); PNG: the chunk list; other formats: the whole file.
    False means the file carries no embedded manifest that c2pa would find in its standard place.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        found = _png_marker_chunks(data)
        if found is not None:
            return found
    end = _jpeg_header_end(data) if data[:2] == b"\xff\xd8" else len(data)
    return any(data.find(marker, 0, end) >= 0 for marker in CREDENTIAL_MARKERS)


@lru_cache(maxsize=8)
def _reader_context(trust_anchors: str | None) -> Any:
    import c2pa  # the native library loads only when a file carries credentials

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


@dataclass(frozen=True)
class ManifestStore:
    """What c2pa-python reported for one file."""

    store: dict[str, Any]  # Reader.json(), parsed
    validation_state: str | None  # "Trusted", "Valid", "Invalid" or None


class RemoteManifestError(Exception):
    """The file refers to credentials stored online; they are not fetched."""


def read_manifest_store(
    data: bytes, mime_type: str | None, trust_anchors: str | None = None
) -> ManifestStore | None:
    """Read and validate the C2PA manifest store embedded in a file.

    Parameters
    ----------
    data : bytes
        The whole file.
    mime_type : str or None
        e.g. ``"image/jpeg"``; None lets c2pa detect the container.
    trust_anchors : str or None
        PEM certificates of authorities whose signers count as trusted.

    Returns
    -------
    ManifestStore or None
        None when the file carries no manifest.

    Raises
    ------
    RemoteManifestError
        When the only manifest is stored at a remote URL.
    c2pa.C2paError
        When the credentials are present but cannot be parsed.
    """
    import c2pa

    try:
        reader = c2pa.Reader.try_create(mime_type, io.BytesIO(data), context=_reader_context(trust_anchors))
    except c2pa.C2paError as exc:
        # 0.38 raises a plain C2paError "Remote: must fetch remote manifests from url ..." when fetching
        # is disabled; RemoteManifest is the typed form other versions use.
        if isinstance(exc, c2pa.C2paError.RemoteManifest) or str(exc).startswith("Remote"):
            raise RemoteManifestError(str(exc)) from exc
        raise
    if reader is None:
        return None
    with reader:
        store = loads_json(reader.json())
        return ManifestStore(store=store, validation_state=store.get("validation_state"))


# ---------------------------------------------------------------------------------------------------
# Summarising a manifest into JSON-safe facts.


def _text(value: Any, limit: int = 300) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _remote_url(message: str) -> str | None:
    found = re.search(r"https?://\S+", message)
    return found.group(0) if found else None


def _software_agent(agent: Any) -> str | None:
    """softwareAgent is a string in C2PA 1.x and a claim-generator-info object in 2.x."""
    if isinstance(agent, dict):
        name = agent.get("name")
        version = agent.get("version")
        return _text(f"{name} {version}" if name and version else name or json.dumps(agent, default=str))
    return _text(agent)


def _generator_info(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    entries = manifest.get("claim_generator_info") or []
    return [
        {key: value for key, value in entry.items() if isinstance(value, str | int | float | bool)}
        for entry in entries
        if isinstance(entry, dict)
    ]


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    if manifest.get("claim_generator"):
        return _text(manifest["claim_generator"])
    names = [
        f"{entry['name']} {entry['version']}" if entry.get("version") else str(entry["name"])
        for entry in _generator_info(manifest)
        if entry.get("name")
    ]
    return ", ".join(names) or None


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not _ACTIONS_LABEL.match(str(assertion.get("label", ""))):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            name = str(action.get("action", ""))
            actions.append(
                {
                    "action": name,
                    "name": name.removeprefix("c2pa."),
                    "software_agent": _software_agent(action.get("softwareAgent")),
                    "digital_source_type": _text(action.get("digitalSourceType")),
                    "when": _text(action.get("when")),
                    "description": _text((action.get("parameters") or {}).get("description")),
                }
            )
    return actions


def _ingredients(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "title": _text(ingredient.get("title")),
            "relationship": _text(ingredient.get("relationship")),
            "format": _text(ingredient.get("format")),
            "manifest": _text(ingredient.get("active_manifest")),
            "validation_failures": [
                str(status.get("code"))
                for status in ingredient.get("validation_status") or []
                if isinstance(status, dict)
            ],
        }
        for ingredient in manifest.get("ingredients") or []
        if isinstance(ingredient, dict)
    ]


def _walk_source_types(value: Any, where: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every (url, where) under a key named like ``digitalSourceType`` (actions, IPTC, CreativeWork)."""
    if depth > _MAX_ASSERTION_DEPTH:
        return
    if isinstance(value, dict):
        for key, child in value.items():
            if str(key).lower().endswith("digitalsourcetype") and isinstance(child, str):
                yield child, where
            else:
                yield from _walk_source_types(child, where, depth + 1)
    elif isinstance(value, list):
        for child in value:
            yield from _walk_source_types(child, where, depth + 1)


def _source_types(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Distinct digital source types declared anywhere in the manifest's assertions."""
    found: dict[str, dict[str, Any]] = {}
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        label = str(assertion.get("label", ""))
        for url, where in _walk_source_types(assertion.get("data"), label):
            entry = found.setdefault(url, {"url": url, "found_in": []})
            if where not in entry["found_in"]:
                entry["found_in"].append(where)
    for entry in found.values():
        known = digital_source_type(entry["url"])
        entry.update(
            term=known["term"] if known else None,
            label=known["label"] if known else None,
            points_to=known["points_to"] if known else "none",
        )
    return list(found.values())


def _validation_codes(store: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    codes: dict[str, list[dict[str, str]]] = {}
    for kind in ("success", "informational", "failure"):
        codes[kind] = [
            {"code": str(item.get("code")), "explanation": _text(item.get("explanation")) or ""}
            for item in results.get(kind) or []
            if isinstance(item, dict)
        ]
    if not results:  # older stores only list problems, in validation_status
        codes["failure"] = [
            {"code": str(item.get("code")), "explanation": _text(item.get("explanation")) or ""}
            for item in store.get("validation_status") or []
            if isinstance(item, dict)
        ]
    return codes


def signature_state(validation_state: str | None, failure_codes: list[str]) -> str:
    """One of "trusted", "valid", "untrusted", "invalid" or "unknown"."""
    if validation_state == "Trusted":
        return "trusted"
    if validation_state == "Invalid" or any(code in TAMPER_CODES for code in failure_codes):
        return "invalid"
    if validation_state == "Valid":
        return "untrusted" if UNTRUSTED_CODE in failure_codes else "valid"
    return "unknown"


def summarize_manifest_store(manifest_store: ManifestStore) -> dict[str, Any]:
    """JSON-safe summary of the active manifest, its validation, and ingredient manifests."""
    store = manifest_store.store
    manifests: dict[str, Any] = store.get("manifests") or {}
    active_label = store.get("active_manifest")
    active = manifests.get(active_label) or {}
    codes = _validation_codes(store)
    failure_codes = [item["code"] for item in codes["failure"]]
    signature = active.get("signature_info") or {}
    ingredients = _ingredients(active)
    ingredient_manifests = []
    for ingredient in ingredients:
        label = ingredient["manifest"]
        if label and label in manifests and label != active_label:
            ingredient_manifests.append(
                {
                    "label": label,
                    "ingredient_title": ingredient["title"],
                    "relationship": ingredient["relationship"],
                    "claim_generator": _claim_generator(manifests[label]),
                    "digital_source_types": _source_types(manifests[label]),
                }
            )
    return {
        "active_manifest": active_label,
        "manifest_count": len(manifests),
        "title": _text(active.get("title")),
        "format": _text(active.get("format")),
        "claim_generator": _claim_generator(active),
        "claim_generator_info": _generator_info(active),
        "claim_version": active.get("claim_version")
        if isinstance(active.get("claim_version"), int)
        else None,
        "signature": {
            "issuer": _text(signature.get("issuer")),
            "common_name": _text(signature.get("common_name")),
            "algorithm": _text(signature.get("alg")),
            "time": _text(signature.get("time")),
            "certificate_serial_number": _text(signature.get("cert_serial_number")),
        },
        "validation_state": manifest_store.validation_state,
        "signature_state": signature_state(manifest_store.validation_state, failure_codes),
        "failures": codes["failure"],
        "informational": [item["code"] for item in codes["informational"]],
        "actions": _actions(active),
        "ingredients": ingredients,
        "digital_source_types": _source_types(active),
        "ingredient_manifests": ingredient_manifests,
        "assertion_labels": [
            str(assertion.get("label"))
            for assertion in active.get("assertions") or []
            if isinstance(assertion, dict)
        ],
    }


# ---------------------------------------------------------------------------------------------------
# Turning the summary into evidence.


def _signer_text(summary: dict[str, Any]) -> str:
    signature = summary["signature"]
    name, issuer = signature["common_name"], signature["issuer"]
    if name and issuer and issuer != name:
        return f"{name} (issued by {issuer})"
    return name or issuer or "an unnamed signer"


def _signed_by_clause(summary: dict[str, Any]) -> str:
    state = summary["signature_state"]
    signer = _signer_text(summary)
    if state in ("trusted", "valid"):
        return f"signed by {signer}"
    if state == "untrusted":
        return f"signed by {signer} with a certificate that is not on a trust list (untrusted)"
    if state == "invalid":
        return "but the credentials no longer validate"
    return f"signed by {signer}, validation unknown"


def _manifest_evidence(summary: dict[str, Any]) -> Evidence:
    state = summary["signature_state"]
    signer = _signer_text(summary)
    made_with = f" Claim generator: {summary['claim_generator']}." if summary["claim_generator"] else ""
    actions = ", ".join(
        action["name"] + (f" ({action['software_agent']})" if action["software_agent"] else "")
        for action in summary["actions"]
    )
    action_text = f" Actions: {actions}." if actions else ""
    failures = summary["failures"]
    tampered = [item for item in failures if item["code"] in TAMPER_CODES]
    points_to: PointsTo = "none"
    strength = 0.0
    if state in ("trusted", "valid"):
        finding = f"Content Credentials (C2PA) are present and intact, signed by {signer}."
    elif state == "untrusted":
        finding = (
            f"Content Credentials (C2PA) are present and intact, but signed by {signer} with a certificate "
            "that is not on a trust list (untrusted), so anyone could have made them."
        )
    elif state == "invalid" and tampered:
        finding = (
            "Content Credentials (C2PA) are present but broken: the image was changed after it was signed."
        )
        points_to, strength = "manipulated", TAMPERED_STRENGTH
    elif state == "invalid":
        reason = (failures[0]["explanation"] or failures[0]["code"]) if failures else "unknown reason"
        finding = f"Content Credentials (C2PA) are present but do not validate ({reason})."
        points_to, strength = "manipulated", BROKEN_STRENGTH
    else:
        finding = f"Content Credentials (C2PA) are present, signed by {signer}; their validity is unknown."
    failure_text = (
        " Validation failures: "
        + "; ".join(f"{item['code']} ({item['explanation']})" for item in failures)
        + "."
        if failures
        else ""
    )
    return Evidence(
        source=SOURCE,
        finding=finding,
        points_to=points_to,
        strength=strength,
        detail=(made_with + action_text + failure_text).strip(),
        data=summary,
    )


def _claim_evidence(
    summary: dict[str, Any], source_type: dict[str, Any], ingredient: dict[str, Any] | None = None
) -> Evidence:
    known = digital_source_type(source_type["url"])
    common = {
        "url": source_type["url"],
        "found_in": source_type["found_in"],
        "signature_state": summary["signature_state"],
        "active_manifest": summary["active_manifest"],
    }
    if known is None:
        return Evidence(
            source=SOURCE,
            finding=f"Content Credentials declare an unrecognised digital source type: {source_type['url']}.",
            data={**common, "term": None},
        )
    points_to: PointsTo = known["points_to"]
    direction = "authentic" if points_to == "authentic" else "incriminating"
    weight = CLAIM_WEIGHT[direction][summary["signature_state"]]
    strength = known["base_strength"] * weight
    subject = "the image"
    if ingredient is not None:
        strength *= INGREDIENT_WEIGHT
        subject = f"an ingredient of the image ({ingredient['ingredient_title'] or 'untitled'})"
        if points_to == "ai-generated" and ingredient["relationship"] != "parentOf":
            points_to = "manipulated"  # an AI-made component placed into the image
    if weight == 0.0 or points_to == "none":
        points_to, strength = "none", 0.0
    meaning = known["meaning"]
    return Evidence(
        source=SOURCE,
        finding=(
            f"Content Credentials say {subject} {meaning} ({known['label']}), {_signed_by_clause(summary)}."
        ),
        points_to=points_to,
        strength=round(strength, 3),
        detail=(
            f"Digital source type {known['term']} found in {', '.join(source_type['found_in'])}."
            + (" This term is retired in the IPTC vocabulary." if known.get("retired") else "")
        ),
        data={**common, "term": known["term"], "ingredient": ingredient["label"] if ingredient else None},
    )


def c2pa_evidence(image: LoadedImage, *, trust_anchors: str | None = None) -> list[Evidence]:
    """Evidence from C2PA Content Credentials embedded in the file.

    Parameters
    ----------
    image : LoadedImage
        The image after intake; only its original file bytes and format are read.
    trust_anchors : str, optional
        PEM certificates of authorities to trust (for example the C2PA trust list). Without them
        every valid signature is reported as coming from an untrusted signer.

    Returns
    -------
    list[Evidence]
        ``[]`` when the file carries no credentials. Otherwise one Evidence about the manifest and its
        signature (``manipulated`` when it no longer validates), plus one per digital source type
        declared in the active manifest or an ingredient's manifest (``trainedAlgorithmicMedia`` ->
        ``ai-generated``, ``digitalCapture`` -> ``authentic``, ...), weighted by the signature state.
    """
    data = image.data
    if not may_carry_credentials(data):
        return []
    try:
        manifest_store = read_manifest_store(data, MIME_TYPES.get(image.format), trust_anchors)
    except RemoteManifestError as exc:
        message = clean_text(str(exc))[0]
        url = _remote_url(message)
        where = f"at {_text(url)}" if url else "online"
        return [
            Evidence(
                source=SOURCE,
                finding="The file points to Content Credentials stored online; they were not fetched.",
                detail=f"The credentials are stored {where}; remote credentials are never fetched, so they "
                "were not checked.",
                data={"remote": True, "remote_url": url, "message": _text(message, 500)},
            )
        ]
    except Exception as exc:  # malformed credentials must not take the batch down
        return [
            Evidence(
                source=SOURCE,
                finding="The file carries Content Credentials (C2PA) data that could not be read.",
                detail="The C2PA reader rejected the embedded manifest store as damaged or malformed, so "
                "neither its claims nor its signature could be checked.",
                data={"error": "unreadable_manifest", "reader_message": _text(clean_text(str(exc))[0], 500)},
            )
        ]
    if manifest_store is None:
        return []
    try:
        return _store_evidence(summarize_manifest_store(manifest_store))
    except Exception as exc:
        logging.getLogger("pixelsleuth").warning("the c2pa check failed: %r", exc)
        return [
            Evidence(
                source=SOURCE,
                finding="The file carries Content Credentials (C2PA) whose contents could not be summarised.",
                detail="The manifest store was read, but its contents have a structure this analysis does "
                "not understand.",
                data={
                    "error": "unsummarisable_manifest",
                    "validation_state": manifest_store.validation_state,
                },
            )
        ]


def _store_evidence(summary: dict[str, Any]) -> list[Evidence]:
    evidence = [_manifest_evidence(summary)]
    declared = set()
    for source_type in summary["digital_source_types"]:
        declared.add(source_type["url"])
        evidence.append(_claim_evidence(summary, source_type))
    for ingredient in summary["ingredient_manifests"]:
        for source_type in ingredient["digital_source_types"]:
            if source_type["url"] not in declared:
                declared.add(source_type["url"])
                evidence.append(_claim_evidence(summary, source_type, ingredient))
    return evidence
