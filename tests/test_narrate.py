"""Optional narration: the request it sends, the check of the reply, and its typed failures.

Every test talks to a stub chat-completions server on 127.0.0.1 started here; no real network.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict.narrate import (
    ENV_API_KEY,
    ENV_MODEL,
    ENV_SEND_IMAGE,
    ENV_URL,
    NarrationConfig,
    NarrationConfigError,
    NarrationError,
    NarrationHTTPError,
    NarrationRejectedError,
    NarrationResponseError,
    NarrationTimeoutError,
    NarrationUnreachableError,
    narrate,
    narration_record,
    validate_narration,
)

KEY = "sk-test-SECRET-4242"


@dataclass
class Stub:
    """What the stub server answers, and what it was asked."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # wait on `release` before answering
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reply(self, text: str, model: str = "stub-model") -> None:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        self.status, self.body = 200, json.dumps({"model": model, "choices": [choice]}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        pass  # a client that gave up (the timeout test) is expected


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(raw)})
            if state.hold:
                state.release.wait()
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def make_analysis(**changes: Any) -> Analysis:
    fields: dict[str, Any] = {
        "path": "photo.png",
        "sha256": "0" * 64,
        "width": 64,
        "height": 48,
        "format": "PNG",
        "verdict": "ai-generated",
        "score": 0.97,
        "evidence": [
            Evidence("exif", "No camera metadata."),
            Evidence(
                "localization",
                "The region x 120–340, y 80–260 was probably manipulated.",
                "manipulated",
                0.7,
                detail="The noise there is 3.1× stronger than elsewhere.",
            ),
            Evidence("watermark", "The SDXL invisible watermark is present.", "ai-generated", 0.97),
            Evidence("c2pa", "No Content Credentials."),
        ],
        "explanation": "The image was probably made by a generative model (score 0.97).",
    }
    return Analysis(**(fields | changes))


def config_for(stub: Stub, **changes: Any) -> NarrationConfig:
    return NarrationConfig(**({"base_url": stub.url, "model": "stub-model", "api_key": KEY} | changes))


GOOD = (
    "The image was probably made by a generative model, with a score of 0.97 [V]. "
    "An SDXL invisible watermark is present, at strength 0.97 [E1]. "
    "The area from x 120 to 340 looks edited; its noise is 3.1 times stronger. [E2]\n"
    "No camera metadata or Content Credentials were found [E3, E4]."
)


def test_the_request_goes_to_chat_completions_with_model_key_and_numbered_evidence_but_no_image(stub):
    stub.reply(GOOD)
    narrate(make_analysis(), config_for(stub))
    (request,) = stub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    payload = request["json"]
    assert payload["model"] == "stub-model" and payload["temperature"] == 0 and payload["stream"] is False
    system, user = payload["messages"]
    assert "[E2]" in system["content"] and "no facts" in system["content"].lower()
    prompt = user["content"]
    assert isinstance(prompt, str)  # plain text: no image part at all
    assert "[V] verdict: ai-generated; score: 0.97" in prompt
    # pointing findings strongest first, then the informative ones in their order
    assert prompt.index("[E1] source: watermark") < prompt.index("[E2] source: localization")
    assert prompt.index("[E2]") < prompt.index("[E3] source: exif") < prompt.index("[E4] source: c2pa")
    assert "3.1× stronger" in prompt and "image_url" not in json.dumps(payload)


def test_the_image_is_sent_only_when_asked_as_one_jpeg_part_without_its_metadata(stub, tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    analysis = make_analysis(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    stub.reply(GOOD)
    assert narrate(analysis, config_for(stub))["image_sent"] is False
    record = narrate(analysis, config_for(stub, send_image=True))
    assert record["image_sent"] is True
    parts = stub.requests[-1]["json"]["messages"][1]["content"]
    images = [part for part in parts if part["type"] == "image_url"]
    assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert [part["type"] for part in parts].count("text") == 1
    assert "image_url" not in json.dumps(stub.requests[0]["json"])


def test_an_image_that_changed_since_the_analysis_is_not_sent(stub, tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(NarrationError, match="changed since it was analysed"):
        narrate(make_analysis(path=str(path)), config_for(stub, send_image=True))
    assert stub.requests == []


def test_a_cited_reply_is_kept_as_claims_and_the_analysis_is_unchanged(stub):
    analysis = make_analysis()
    before = analysis.to_dict()
    stub.reply(GOOD)
    record = narrate(analysis, config_for(stub))
    assert analysis.to_dict() == before  # the narration never changes the verdict (or anything else)
    assert [claim["cites"] for claim in record["claims"]] == [["V"], ["E1"], ["E2"], ["E3", "E4"]]
    assert record["claims"][1]["sentence"] == "An SDXL invisible watermark is present, at strength 0.97."
    assert record["dropped"] == []
    assert record["text"].startswith(
        "The image was probably made by a generative model, with a score of 0.97 [V]."
    )
    assert "No camera metadata or Content Credentials were found [E3, E4]." in record["text"]
    assert record["evidence_ids"] == {"E1": 2, "E2": 1, "E3": 0, "E4": 3}
    assert record["model"] == "stub-model" and record["endpoint"] == f"{stub.url}/chat/completions"
    assert record["image_sent"] is False and record["finish_reason"] == "stop"
    assert KEY not in json.dumps(record)
    analysis.narration = record
    assert Analysis.from_dict(json.loads(analysis.to_json())).narration == record


def test_uncited_unknown_and_unsupported_sentences_are_dropped_with_their_reasons(stub):
    stub.reply(
        "The SDXL watermark is present [E1]. "
        "This is clearly a fake made with Midjourney. "
        "A second watermark was found [E9]. "
        "The watermark is present at strength 0.99 [E1]. "
        "The edited region spans 120–340 pixels [E1]."  # the numbers are in E2, not in E1
    )
    record = narrate(make_analysis(), config_for(stub))
    assert [claim["sentence"] for claim in record["claims"]] == ["The SDXL watermark is present."]
    reasons = [(entry["reason"], entry["sentence"]) for entry in record["dropped"]]
    assert reasons == [
        ("uncited", "This is clearly a fake made with Midjourney."),
        ("unknown-id", "A second watermark was found [E9]."),
        ("unsupported-number", "The watermark is present at strength 0.99 [E1]."),
        ("unsupported-number", "The edited region spans 120–340 pixels [E1]."),
    ]
    assert "E9" in record["dropped"][1]["why"] and "0.99" in record["dropped"][2]["why"]


def test_a_reply_with_nothing_checkable_is_rejected_and_the_batch_variant_records_why(stub):
    stub.reply("The image is fake. Trust me, it is 100% AI [E1].")
    with pytest.raises(NarrationRejectedError) as caught:
        narrate(make_analysis(), config_for(stub))
    assert caught.value.type == "narration_rejected"
    assert [entry["reason"] for entry in caught.value.dropped] == ["uncited", "unsupported-number"]
    assert pickle.loads(pickle.dumps(caught.value)).dropped == caught.value.dropped
    assert pickle.loads(pickle.dumps(config_for(stub))) == config_for(stub)
    record = narration_record(make_analysis(), config_for(stub))
    assert record is not None and record["text"] == "" and record["claims"] == []
    assert record["error"]["type"] == "narration_rejected" and len(record["dropped"]) == 2
    stub.reply(GOOD)
    assert narration_record(make_analysis(), config_for(stub))["error"] is None


def test_a_failed_analysis_is_not_narrated_and_nothing_is_sent(stub):
    failed = make_analysis(verdict="error", score=None, evidence=[], error={"type": "x", "message": "y"})
    assert narration_record(failed, config_for(stub)) is None
    with pytest.raises(NarrationError, match="nothing to narrate"):
        narrate(failed, config_for(stub))
    assert stub.requests == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "failed (HTTP 500)"), (429, "rate-limiting"), (401, "API key was refused"), (404, "/v1")],
)
def test_http_errors_are_typed_sentences_that_never_show_the_key(stub, status, expected):
    stub.status = status
    # a careless server that echoes the credentials it received
    stub.body = json.dumps({"error": {"message": f"bad request from Bearer {KEY}"}}).encode()
    with pytest.raises(NarrationHTTPError) as caught:
        narrate(make_analysis(), config_for(stub))
    error = caught.value
    assert error.status == status and expected in error.message and isinstance(error, PixelsleuthError)
    assert KEY not in error.message and KEY not in str(error) and "[key]" in error.message
    assert error.to_dict()["type"] == "narration_http_error"
    copy = pickle.loads(pickle.dumps(error))  # errors and configs cross worker processes
    assert (type(copy), copy.status, copy.message) == (NarrationHTTPError, status, error.message)


def test_a_redirect_is_not_followed(stub):
    stub.status, stub.headers = 307, {"Location": "http://127.0.0.1:9/elsewhere"}
    with pytest.raises(NarrationHTTPError, match="redirected") as caught:
        narrate(make_analysis(), config_for(stub))
    assert caught.value.status == 307 and len(stub.requests) == 1


@pytest.mark.parametrize(
    "body", [b"<html>Bad gateway</html>", b'{"choices": []}', b"[1, 2]", b'{"choices": [{"message": {}}]}']
)
def test_garbage_is_a_bad_response(stub, body):
    stub.status, stub.body = 200, body
    with pytest.raises(NarrationResponseError) as caught:
        narrate(make_analysis(), config_for(stub))
    assert caught.value.type == "narration_bad_response" and KEY not in caught.value.message


def test_a_server_that_does_not_answer_in_time_is_a_timeout(stub):
    stub.hold = True  # the handler waits until the fixture releases it
    stub.reply(GOOD)
    with pytest.raises(NarrationTimeoutError) as caught:
        narrate(make_analysis(), config_for(stub, timeout_s=0.2))
    assert caught.value.type == "narration_timeout" and KEY not in caught.value.message
    record = narration_record(make_analysis(), config_for(stub, timeout_s=0.2))
    assert record["error"]["type"] == "narration_timeout"


def test_a_closed_port_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = NarrationConfig(f"http://127.0.0.1:{port}/v1", "m", api_key=KEY)
    with pytest.raises(NarrationUnreachableError, match="could not reach") as caught:
        narrate(make_analysis(), config)
    assert KEY not in caught.value.message


def test_from_env_is_none_without_a_url_and_reads_the_rest(monkeypatch):
    for name in (ENV_URL, ENV_MODEL, ENV_API_KEY, ENV_SEND_IMAGE):
        monkeypatch.delenv(name, raising=False)
    assert NarrationConfig.from_env() is None
    monkeypatch.setenv(ENV_URL, "http://localhost:8000/v1")
    monkeypatch.setenv(ENV_MODEL, "qwen2.5-vl")
    monkeypatch.setenv(ENV_API_KEY, KEY)
    config = NarrationConfig.from_env()
    assert config is not None and config.model == "qwen2.5-vl" and config.api_key == KEY
    assert config.send_image is False and config.temperature == 0
    assert KEY not in repr(config)
    monkeypatch.setenv(ENV_SEND_IMAGE, "yes")
    assert NarrationConfig.from_env().send_image is True
    # the key defaults from the environment when a config is built in code
    assert NarrationConfig("http://localhost:8000/v1", "m").api_key == KEY


def test_misconfiguration_is_a_typed_error_without_the_secret():
    with pytest.raises(NarrationConfigError, match=ENV_MODEL):
        NarrationConfig.from_env({ENV_URL: "http://localhost:8000/v1"})
    with pytest.raises(NarrationConfigError, match="credentials") as caught:
        NarrationConfig(f"http://user:{KEY}@localhost:8000/v1", "m")
    assert KEY not in caught.value.message
    with pytest.raises(NarrationConfigError, match="http"):
        NarrationConfig("localhost:8000/v1", "m")
    with pytest.raises(NarrationConfigError):
        NarrationConfig.from_env({ENV_URL: "http://h/v1", ENV_MODEL: "m", ENV_SEND_IMAGE: "maybe"})
    config = NarrationConfig("https://h.example/v1?api-key=abc", "m", api_key=None)
    assert config.endpoint == "https://h.example/v1/chat/completions?api-key=abc"
    assert config.public_endpoint == "https://h.example/v1/chat/completions"


IDS = {
    "V": "verdict: ai-generated; score: 0.97 on a scale from 0 (authentic) to 1 (not authentic)",
    "E1": "source: watermark; points to: ai-generated; strength: 0.97; finding: The SDXL watermark is here.",
    "E2": "source: c2pa; points to: ai-generated; strength: 0.95; finding: Made with Adobe Firefly 2 "
    "(x 1,024, quality 0.9683).",
}


def check(text: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    return validate_narration(text, IDS.keys(), IDS)


def test_citations_may_follow_the_full_stop_name_ranges_and_lists():
    claims, dropped = check("The watermark is there. [E1] Firefly made it [E2] Both agree [E1–E2].")
    assert [claim["cites"] for claim in claims] == [["E1"], ["E2"], ["E1", "E2"]] and dropped == []
    claims, _ = check("- The watermark is there [e1].\n2. **Firefly** made it [E2; V].")
    assert [claim["cites"] for claim in claims] == [["E1"], ["E2", "V"]]
    assert claims[1]["sentence"] == "Firefly made it."
    claims, dropped = check("The watermark is there (E1).Firefly made it [E2].Nothing else.")
    assert [claim["cites"] for claim in claims] == [["E1"], ["E2"]]
    assert [entry["reason"] for entry in dropped] == ["uncited"]


def test_numbers_are_checked_but_names_percentages_and_rounding_are_understood():
    claims, dropped = check(
        "C2PA says Firefly 2 made it [E2]. "  # digits inside names are not numbers
        "The watermark is 97% certain [E1]. "  # a percentage of a stated fraction
        "The quality is 0.97 [E2]. "  # 0.9683 restated at two decimals
        "It is 1,024 wide [E2]. "
        "Three models agree [E1]. "  # numbers in words are not checked
        "The score is 0.97 out of 1 [V]."  # the scale is part of the verdict item
    )
    assert len(claims) == 6 and dropped == []
    _, dropped = check("The quality is 0.96 [E2]. The strength is 0.95 [E1]. It is 2048 wide [E2].")
    assert [entry["reason"] for entry in dropped] == ["unsupported-number"] * 3


def test_reasoning_blocks_stray_citations_and_brackets_that_are_not_citations():
    claims, dropped = check("<think>E1 says 0.5</think>The watermark [sic] is present [E1]. [E2]")
    assert [claim["sentence"] for claim in claims] == ["The watermark [sic] is present."]
    assert dropped == []


def test_scan_narrate_adds_a_cited_retelling_to_each_result_without_sending_the_image(
    stub, monkeypatch, tmp_path
):
    from pathlib import Path

    from typer.testing import CliRunner

    from pixelsleuth.outputs.cli import app

    sample = Path(__file__).resolve().parents[1] / "samples" / "a1111-parameters.png"
    stub.reply("The file carries generation parameters from AUTOMATIC1111 [E1]. It is a cat [E99].")
    monkeypatch.setenv(ENV_URL, stub.url)
    monkeypatch.setenv(ENV_MODEL, "stub-model")
    runner = CliRunner()
    args = ["scan", str(sample), "--no-default-detectors", "--json", "--file-timeout", "0"]
    result = runner.invoke(app, [*args, "--narrate", "--store", str(tmp_path / "s.sqlite3")])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["narration"]["text"].startswith("The file carries generation parameters")
    assert [item["sentence"] for item in record["narration"]["dropped"]] == ["It is a cat [E99]."]
    assert record["verdict"] == "ai-generated"  # the narration never changes the verdict
    sent = json.dumps(stub.requests[0]["json"])
    assert "image_url" not in sent and "AUTOMATIC1111" in sent
    again = runner.invoke(app, [*args, "--store", str(tmp_path / "s.sqlite3")])  # kept in the store
    assert json.loads(again.stdout.splitlines()[0])["narration"]["text"] == record["narration"]["text"]
    monkeypatch.delenv(ENV_URL)
    refused = runner.invoke(app, [*args, "--narrate", "--no-store"])
    assert refused.exit_code == 2 and "PIXELSLEUTH_NARRATION_URL" in refused.output
