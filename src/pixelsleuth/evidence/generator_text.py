"""Generation records that image generators write into the file's own text.

Stable Diffusion front ends and some hosted generators store the prompt and sampling settings in PNG
text chunks, EXIF UserComment, XMP or JPEG comments. Finding one is close to decisive: cameras never
write them, and they are rarely forged. Formats read (all shapes checked against real files or the
tools' own source where that was possible):

* AUTOMATIC1111 / Forge / SD.Next / Fooocus (A1111 scheme) / Civitai: ``parameters`` text
  (prompt lines, ``Negative prompt:``, then ``Steps: 20, Sampler: ..., Seed: ...``), also in EXIF
  UserComment of JPEG and WebP.
* ComfyUI: ``prompt`` (API graph) and ``workflow`` (UI graph) JSON chunks.
* InvokeAI: ``invokeai_metadata`` / ``invokeai_graph`` JSON (3.x+), ``sd-metadata`` JSON and the
  ``Dream`` command line (1.x-2.x, also NMKD).
* NovelAI (``Software`` = NovelAI, ``Comment`` JSON), Fooocus (``parameters`` JSON +
  ``fooocus_scheme``), SwarmUI (``sui_image_params``), Easy Diffusion, Draw Things (XMP
  exif:UserComment JSON), Midjourney (``Description`` ending in ``Job ID: <uuid>``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, fields
from typing import Any

from pixelsleuth.evidence.exif import parse_exif
from pixelsleuth.evidence.metadata import decode_user_comment, exif_text
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.evidence.xmp import parse_xmp
from pixelsleuth.intake.image import LoadedImage
from pixelsleuth.intake.text import clean_text, loads_json

SOURCE = "generator-text"
COMPLETE_RECORD_STRENGTH = 0.95  # prompt plus at least two sampling settings
PARTIAL_RECORD_STRENGTH = 0.85  # a prompt, or settings, or a generator command, but not both
BARE_RECORD_STRENGTH = 0.7  # the generator's own key is present but says little
_MAX_TEXT = 2000  # longest string kept in Evidence.data
_MAX_ITEMS = 50  # longest list kept in Evidence.data
_MAX_GRAPH_DEPTH = 8
_MAX_QUOTED_CHARS = 120  # longest file-supplied name quoted inside a finding sentence
# Caps on what one text is parsed for: real settings lines are a few hundred characters to a few kB
# with a few dozen settings, and real Dream command lines are shorter still.
MAX_SETTINGS_LINE_CHARS = 64_000
MAX_SETTINGS = 100
MAX_DREAM_COMMAND_CHARS = 16_000  # shlex takes quadratic time on one long token

# Pieces of an AUTOMATIC1111 settings line, `Key: value, Key: "quoted, value", ...`; each is a single
# character class or a quoted string without overlapping alternatives, so matching is linear.
_WHITESPACE = re.compile(r"\s*")
_SETTING_KEY_TAIL = re.compile(r"[\w \-/.()+]*")
_QUOTED_VALUE = re.compile(r'"[^\\"]*(?:\\.[^\\"]*)*"')
_A1111_FIELDS = {
    "Steps": "steps",
    "Sampler": "sampler",
    "Schedule type": "scheduler",
    "CFG scale": "cfg_scale",
    "Seed": "seed",
    "Size": "size",
    "Model hash": "model_hash",
    "Model": "model",
}
_MIDJOURNEY_JOB = re.compile(
    r"Job ID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.I
)
_MIDJOURNEY_PARAM = re.compile(r"--([a-z]+)(?:\s+([^\s-][^\s]*(?:\s+[^\s-][^\s]*)?))?", re.I)
_DREAM_OPTION = re.compile(r"^--?[A-Za-z]")
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")
# A bracketed negative with the white space before it. The anchor (start of text or right after a
# non-space) stops the engine from retrying the pattern at every position inside a long run of spaces.
_BRACKETED_WITH_SPACE = re.compile(r"(?:^|(?<=\S))\s*\[[^\[\]]*\]")
_DREAM_FIELDS = {
    "-s": "steps",
    "--steps": "steps",
    "-S": "seed",
    "--seed": "seed",
    "-W": "width",
    "--width": "width",
    "-H": "height",
    "--height": "height",
    "-C": "cfg_scale",
    "--cfg_scale": "cfg_scale",
    "-A": "sampler",
    "--sampler": "sampler",
}
# Short options that older InvokeAI also wrote glued to their value ("-s50", "-Ak_lms").
_DREAM_GLUED = (
    "-tm",
    "-ft",
    "-cf",
    "-s",
    "-S",
    "-W",
    "-H",
    "-C",
    "-A",
    "-I",
    "-M",
    "-f",
    "-V",
    "-v",
    "-G",
    "-U",
)
_COMFY_SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
_COMFY_SEED_CONTROLS = frozenset({"fixed", "increment", "decrement", "randomize"})
_COMFY_TEXT_KEYS = ("text", "text_g", "text_l", "prompt", "clip_l", "t5xxl")
_COMFY_VIA = ("noise", "guider", "sampler", "sigmas")
_COMFY_MODEL_KEYS = ("ckpt_name", "unet_name")
_LINK_SCALAR_KEYS = ("value", "seed", "noise_seed", "int", "float", "string", "text", "number")


@dataclass
class GenerationRecord:
    """Generation settings read from an image, in one shape whatever the tool.

    Attributes:
        tool: the generator or front end ("AUTOMATIC1111", "ComfyUI", "InvokeAI", ...).
        prompt, negative_prompt: the text prompts ("" when absent).
        model, model_hash, sampler, scheduler, steps, cfg_scale, seed, size: sampling settings
            (None when absent); `size` is "WIDTHxHEIGHT".
        extra: other facts the tool recorded (version, LoRAs, job id, ...), JSON-serialisable.
        found_in: where the record was read, e.g. "PNG text chunk 'parameters'".
    """

    tool: str
    prompt: str = ""
    negative_prompt: str = ""
    model: str | None = None
    model_hash: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    size: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    found_in: str = ""

    @property
    def settings_count(self) -> int:
        """How many of model, sampler, steps, CFG scale, seed and size are known."""
        values = (self.model, self.sampler, self.steps, self.cfg_scale, self.seed, self.size)
        return sum(value is not None for value in values)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-serialisable values (long strings and lists shortened, depth limited)."""
        return {item.name: _json_safe(getattr(self, item.name)) for item in fields(self)}


# ------------------------------------------------------------------------------------------- helpers


def _json_safe(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return None
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 1] + "…"
    if isinstance(value, dict):
        return {str(key): _json_safe(item, depth + 1) for key, item in list(value.items())[:_MAX_ITEMS]}
    if isinstance(value, list | tuple):
        return [_json_safe(item, depth + 1) for item in list(value)[:_MAX_ITEMS]]
    return str(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _size(width: Any, height: Any) -> str | None:
    width, height = _as_int(width), _as_int(height)
    return f"{width}x{height}" if width and height else None


def _load_json(text: Any) -> Any:
    if not isinstance(text, str) or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return loads_json(text)
    except (ValueError, RecursionError):
        return None


def _quoted(text: str) -> str:
    """A name from the file, on one line and short enough to quote inside a sentence."""
    if not text.isprintable():
        text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTED_CHARS else text[: _MAX_QUOTED_CHARS - 1] + "…"


def _model_name(path: Any) -> str | None:
    text = _as_text(path)
    return text.replace("\\", "/").rsplit("/", 1)[-1] if text else None


def _format_number(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------------------------ AUTOMATIC1111


def parse_a1111_parameters(text: str, *, require_settings: bool = True) -> GenerationRecord | None:
    """Parse AUTOMATIC1111-style ``parameters`` text (also Forge, SD.Next, Fooocus's A1111 scheme).

    Parameters
    ----------
    text:
        Prompt lines, an optional ``Negative prompt:`` section and a settings line
        ``Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, ...``. Quoted values
        (JSON strings, which may contain commas) are unquoted. The settings line is read up to
        `MAX_SETTINGS_LINE_CHARS` characters and `MAX_SETTINGS` settings (see `a1111_settings`).
    require_settings:
        When True (the default), return None unless a settings line is present: A1111 always writes
        one, and without it arbitrary text would pass for a prompt.

    Returns
    -------
    GenerationRecord or None
    """
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings_at = next(
        (i for i in range(len(lines) - 1, -1, -1) if lines[i].lstrip().startswith("Steps:")), None
    )
    if settings_at is None and lines and len(a1111_settings(lines[-1], limit=3)) >= 3:
        settings_at = len(lines) - 1
    if settings_at is None and require_settings:
        return None
    settings: dict[str, str] = {}
    body = lines if settings_at is None else lines[:settings_at]
    if settings_at is not None:
        for key, raw in a1111_settings(lines[settings_at]):
            settings[key] = _unquoted(raw.strip())
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    record = GenerationRecord(
        tool=_a1111_flavour(settings),
        prompt="\n".join(prompt_lines).strip(),
        negative_prompt="\n".join(negative_lines).strip(),
    )
    for key, value in settings.items():
        attribute = _A1111_FIELDS.get(key)
        if attribute == "steps":
            record.steps = _as_int(value)
        elif attribute == "seed":
            record.seed = _as_int(value)
        elif attribute == "cfg_scale":
            record.cfg_scale = _as_float(value)
        elif attribute is not None:
            setattr(record, attribute, _as_text(value))
        else:
            record.extra[key] = value
    if settings_at is not None and settings_at + 1 < len(lines):
        record.extra["trailing_text"] = "\n".join(lines[settings_at + 1 :]).strip()
    if not record.prompt and not settings:
        return None
    return record


def a1111_settings(line: str, limit: int = MAX_SETTINGS) -> list[tuple[str, str]]:
    """The ``(key, raw value)`` pairs of an A1111 settings line, in one left-to-right pass.

    A key starts with an ASCII letter and runs over word characters, spaces and ``-/.()+`` up to a
    colon; its value is a JSON-style quoted string followed by a comma or the end, or else everything up
    to the next comma. Text that fits neither is skipped. A key that never reaches a colon is skipped
    whole: retrying each of its characters as a new start (what a regular expression with ``findall``
    does) costs quadratic time on long text. Keys come back stripped, values as written.

    Only the first `MAX_SETTINGS_LINE_CHARS` characters are read, and at most `limit` pairs returned.

    Example:
        >>> a1111_settings('Steps: 20, Sampler: Euler a, Lora hashes: "a: 1, b: 2"')
        [('Steps', '20'), ('Sampler', 'Euler a'), ('Lora hashes', '"a: 1, b: 2"')]
    """
    line = line[:MAX_SETTINGS_LINE_CHARS]
    size = len(line)
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < size and len(pairs) < limit:
        key_start = _WHITESPACE.match(line, position).end()
        if key_start >= size or not ("A" <= line[key_start] <= "Z" or "a" <= line[key_start] <= "z"):
            position = key_start + 1  # every start in the white space before reaches this same character
            continue
        key_end = _SETTING_KEY_TAIL.match(line, key_start + 1).end()
        colon = _WHITESPACE.match(line, key_end).end()
        if colon >= size or line[colon] != ":":
            position = key_end  # every start inside this key fails the same way
            continue
        value_start = _WHITESPACE.match(line, colon + 1).end()
        value_end, next_position = _a1111_value_span(line, value_start)
        pairs.append((line[key_start:key_end].strip(), line[value_start:value_end]))
        position = next_position
    return pairs


def _a1111_value_span(line: str, start: int) -> tuple[int, int]:
    """Where a settings value ends, and where the next setting may start."""
    size = len(line)
    if start < size and line[start] == '"':
        quoted = _QUOTED_VALUE.match(line, start)
        if quoted is not None and (quoted.end() == size or line[quoted.end()] == ","):
            return quoted.end(), quoted.end() + 1
    comma = line.find(",", start)
    return (size, size) if comma < 0 else (comma, comma + 1)


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(loads_json(value))
        except (ValueError, RecursionError):
            return value[1:-1]
    return value


def _a1111_flavour(settings: dict[str, str]) -> str:
    version = settings.get("Version", "")
    if settings.get("App", "").startswith("SD.Next"):
        return "SD.Next"
    if re.match(r"f\d", version):
        return "Stable Diffusion WebUI Forge"
    if version == "ComfyUI":
        return "ComfyUI"
    if "fooocus" in version.lower():
        return "Fooocus"
    if "Civitai resources" in settings or "Civitai metadata" in settings:
        return "Civitai"
    return "AUTOMATIC1111"


# ------------------------------------------------------------------------------------------ ComfyUI


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
    )


def _node(graph: dict[str, Any], link: Any) -> dict[str, Any] | None:
    if not _is_link(link):
        return None
    node = graph.get(str(link[0]))
    return node if isinstance(node, dict) else None


def _inputs(node: dict[str, Any] | None) -> dict[str, Any]:
    inputs = node.get("inputs") if node else None
    return inputs if isinstance(inputs, dict) else {}


def _through_link(graph: dict[str, Any], link: Any, depth: int) -> Any:
    """The scalar a primitive/utility node feeds into a link."""
    node = _node(graph, link)
    if node is None or depth <= 0:
        return None
    inputs = _inputs(node)
    for key in _LINK_SCALAR_KEYS:
        value = inputs.get(key)
        if _is_link(value):
            return _through_link(graph, value, depth - 1)
        if value is not None and not isinstance(value, dict | list):
            return value
    return None


def _lookup(
    graph: dict[str, Any],
    node: dict[str, Any],
    keys: tuple[str, ...],
    via: tuple[str, ...],
    depth: int,
    searched: dict[int, int] | None = None,
) -> Any:
    """The first value of `keys` on `node` or upstream of it along `via` links, within `depth` hops.

    `searched` remembers, per node, the largest depth already searched in vain, so a graph whose
    nodes link back to each other costs one visit per node and depth instead of one per path.
    """
    searched = {} if searched is None else searched
    if searched.get(id(node), -1) >= depth:
        return None
    inputs = _inputs(node)
    for key in keys:
        if key in inputs:
            value = inputs[key]
            return _through_link(graph, value, depth) if _is_link(value) else value
    if depth <= 0:
        return None
    for key in via:
        upstream = _node(graph, inputs.get(key))
        if upstream is not None:
            found = _lookup(graph, upstream, keys, via, depth - 1, searched)
            if found is not None:
                return found
    searched[id(node)] = depth
    return None


def _conditioning_texts(
    graph: dict[str, Any], link: Any, role: str, depth: int, expanded: dict[int, int] | None = None
) -> list[str]:
    """Prompt texts upstream of a conditioning link, within `depth` hops.

    `expanded` remembers the largest depth each node was already expanded with: expanding it again
    with no more depth can only repeat texts already found (the caller drops repeats), and on a graph
    whose nodes link back to each other it would cost one visit per path, exponential in `depth`.
    """
    expanded = {} if expanded is None else expanded
    node = _node(graph, link)
    if node is None or depth <= 0 or expanded.get(id(node), 0) >= depth:
        return []
    expanded[id(node)] = depth
    inputs = _inputs(node)
    texts = []
    for key in _COMFY_TEXT_KEYS:
        value = inputs.get(key)
        if _is_link(value):
            value = _through_link(graph, value, depth - 1)
        if isinstance(value, str) and value.strip():
            texts.append(value.strip())
    if texts:
        return texts
    for key, value in inputs.items():
        if _is_link(value) and (key == role or "conditioning" in key):
            texts += _conditioning_texts(graph, value, role, depth - 1, expanded)
    return texts


def _conditioning_link(graph: dict[str, Any], sampler: dict[str, Any], role: str) -> Any:
    inputs = _inputs(sampler)
    if role in inputs:
        return inputs[role]
    guider = _node(graph, inputs.get("guider"))
    guider_inputs = _inputs(guider)
    if role in guider_inputs:
        return guider_inputs[role]
    return guider_inputs.get("conditioning") if role == "positive" else None


def _parse_comfy_api(graph: dict[str, Any]) -> GenerationRecord | None:
    nodes = {key: node for key, node in graph.items() if isinstance(node, dict) and "class_type" in node}
    if not nodes:
        return None

    def order(key: str) -> tuple[int, str]:
        # Node ids are short decimal numbers; other keys (digits int() rejects, such as "²") sort last.
        numeric = key.isascii() and key.isdigit() and len(key) <= 18
        return (int(key), key) if numeric else (1 << 30, key)

    samplers = [key for key in sorted(nodes, key=order) if nodes[key].get("class_type") in _COMFY_SAMPLERS]
    if not samplers:
        samplers = [
            key
            for key in sorted(nodes, key=order)
            if "sampler" in str(nodes[key].get("class_type", "")).lower()
            and "positive" in _inputs(nodes[key])
        ]
    record = GenerationRecord(tool="ComfyUI")
    loras = [value for node in nodes.values() if isinstance(value := _inputs(node).get("lora_name"), str)]
    if loras:
        record.extra["loras"] = loras
    record.extra["nodes"] = len(nodes)
    if samplers:
        sampler = nodes[samplers[0]]
        record.extra["sampler_node"] = sampler.get("class_type")
        if len(samplers) > 1:
            record.extra["sampler_nodes"] = len(samplers)
        depth = _MAX_GRAPH_DEPTH
        record.seed = _as_int(_lookup(graph, sampler, ("seed", "noise_seed"), _COMFY_VIA, depth))
        record.steps = _as_int(_lookup(graph, sampler, ("steps",), _COMFY_VIA, depth))
        record.cfg_scale = _as_float(_lookup(graph, sampler, ("cfg",), _COMFY_VIA, depth))
        record.sampler = _as_text(_lookup(graph, sampler, ("sampler_name",), _COMFY_VIA, depth))
        record.scheduler = _as_text(_lookup(graph, sampler, ("scheduler",), _COMFY_VIA, depth))
        record.model = _model_name(_lookup(graph, sampler, _COMFY_MODEL_KEYS, ("model", "guider"), depth))
        for role in ("positive", "negative"):
            texts = _conditioning_texts(graph, _conditioning_link(graph, sampler, role), role, depth)
            joined = "\n".join(dict.fromkeys(texts))
            if role == "positive":
                record.prompt = joined
            else:
                record.negative_prompt = joined
        latent = _node(graph, _inputs(sampler).get("latent_image"))
        record.size = _size(_inputs(latent).get("width"), _inputs(latent).get("height"))
    if record.model is None:
        record.model = next(
            (
                _model_name(_inputs(node).get(key))
                for node in nodes.values()
                for key in _COMFY_MODEL_KEYS
                if isinstance(_inputs(node).get(key), str)
            ),
            None,
        )
    if record.size is None:
        record.size = next(
            (
                size
                for node in nodes.values()
                if "Latent" in str(node.get("class_type", ""))
                and (size := _size(_inputs(node).get("width"), _inputs(node).get("height")))
            ),
            None,
        )
    if not record.prompt and not samplers:
        texts = [
            value.strip()
            for node in nodes.values()
            if "TextEncode" in str(node.get("class_type", ""))
            and isinstance(value := _inputs(node).get("text"), str)
            and value.strip()
        ]
        record.prompt = "\n".join(texts)
    return record


def _workflow_links(workflow: dict[str, Any]) -> dict[int, int]:
    """UI-workflow link id -> origin node id (links are lists or, in newer files, objects)."""
    origins: dict[int, int] = {}
    for link in _list(workflow.get("links")):
        if isinstance(link, list) and len(link) >= 2:
            link_id, origin = _as_int(link[0]), _as_int(link[1])
        elif isinstance(link, dict):
            link_id, origin = _as_int(link.get("id")), _as_int(link.get("origin_id"))
        else:
            continue
        if link_id is not None and origin is not None:
            origins[link_id] = origin
    return origins


def _parse_comfy_workflow(workflow: dict[str, Any]) -> GenerationRecord | None:
    raw_nodes = workflow.get("nodes")
    if not isinstance(raw_nodes, list):
        return None
    nodes = {_as_int(node.get("id")): node for node in raw_nodes if isinstance(node, dict)}
    origins = _workflow_links(workflow)
    record = GenerationRecord(tool="ComfyUI", extra={"nodes": len(nodes), "from": "workflow"})

    def widgets(node: dict[str, Any]) -> list[Any]:
        values = node.get("widgets_values")
        if isinstance(values, dict):
            return list(values.values())
        return values if isinstance(values, list) else []

    def text_from(link_id: Any) -> str:
        node = nodes.get(origins.get(_as_int(link_id) or -1))
        if node is None or "TextEncode" not in str(node.get("type", "")):
            return ""
        strings = [value for value in widgets(node) if isinstance(value, str)]
        return strings[0].strip() if strings else ""

    for node in nodes.values():
        kind = str(node.get("type", ""))
        values = widgets(node)
        if record.model is None and ("Checkpoint" in kind or kind == "UNETLoader"):
            record.model = _model_name(next((value for value in values if isinstance(value, str)), None))
        elif kind in ("KSampler", "KSamplerAdvanced") and record.steps is None:
            settings = [v for v in values if not (isinstance(v, str) and v in _COMFY_SEED_CONTROLS)]
            if kind == "KSamplerAdvanced" and settings and settings[0] in ("enable", "disable"):
                settings = settings[1:]
            if len(settings) >= 5:
                record.seed, record.steps = _as_int(settings[0]), _as_int(settings[1])
                record.cfg_scale = _as_float(settings[2])
                record.sampler, record.scheduler = _as_text(settings[3]), _as_text(settings[4])
            for slot in _list(node.get("inputs")):
                if isinstance(slot, dict) and slot.get("name") == "positive":
                    record.prompt = text_from(slot.get("link"))
                elif isinstance(slot, dict) and slot.get("name") == "negative":
                    record.negative_prompt = text_from(slot.get("link"))
        elif "EmptyLatent" in kind and record.size is None and len(values) >= 2:
            record.size = _size(values[0], values[1])
    if not record.prompt:
        texts = [
            value.strip()
            for node in nodes.values()
            if "TextEncode" in str(node.get("type", ""))
            for value in widgets(node)[:1]
            if isinstance(value, str) and value.strip()
        ]
        record.prompt = "\n".join(texts[:1])
    return record if nodes else None


def parse_comfyui(prompt: Any, workflow: Any) -> GenerationRecord | None:
    """Read a ComfyUI API graph (``prompt`` chunk) and/or UI workflow (``workflow`` chunk).

    Parameters
    ----------
    prompt, workflow:
        Decoded JSON (or None). The API graph is preferred; the workflow fills what it lacks.

    Returns
    -------
    GenerationRecord or None
        None when neither looks like a ComfyUI graph.
    """
    record = _parse_comfy_api(prompt) if isinstance(prompt, dict) else None
    from_workflow = _parse_comfy_workflow(workflow) if isinstance(workflow, dict) else None
    if record is None:
        return from_workflow
    if from_workflow is not None:
        for name in (
            "prompt",
            "negative_prompt",
            "model",
            "sampler",
            "scheduler",
            "steps",
            "cfg_scale",
            "seed",
            "size",
        ):
            if not getattr(record, name) and getattr(from_workflow, name):
                setattr(record, name, getattr(from_workflow, name))
        record.extra["workflow_nodes"] = from_workflow.extra.get("nodes")
    return record


# ----------------------------------------------------------------------------------------- InvokeAI


def _parse_invokeai_metadata(meta: dict[str, Any]) -> GenerationRecord:
    model = meta.get("model")
    record = GenerationRecord(
        tool="InvokeAI",
        prompt=_as_text(meta.get("positive_prompt")) or "",
        negative_prompt=_as_text(meta.get("negative_prompt")) or "",
        seed=_as_int(meta.get("seed")),
        steps=_as_int(meta.get("steps")),
        cfg_scale=_as_float(meta.get("cfg_scale")),
        scheduler=_as_text(meta.get("scheduler")),
        size=_size(meta.get("width"), meta.get("height")),
    )
    if isinstance(model, dict):
        record.model = _as_text(model.get("model_name") or model.get("name"))
        record.model_hash = _as_text(model.get("hash"))
        base = _as_text(model.get("base_model") or model.get("base"))
        if base:
            record.extra["base_model"] = base
    else:
        record.model = _as_text(model)
    for key in ("app_version", "generation_mode", "positive_style_prompt", "negative_style_prompt"):
        if meta.get(key):
            record.extra[key] = meta[key]
    return record


def _parse_invokeai_graph(graph: dict[str, Any]) -> GenerationRecord | None:
    raw_nodes = graph.get("nodes")
    nodes = raw_nodes if isinstance(raw_nodes, dict) else {}
    if isinstance(raw_nodes, list):
        nodes = {str(node.get("id")): node for node in raw_nodes if isinstance(node, dict)}
    if not nodes:
        return None
    roles: dict[str, str] = {}
    for edge in _list(graph.get("edges")):
        if not isinstance(edge, dict):
            continue
        source, destination = edge.get("source") or {}, edge.get("destination") or {}
        if isinstance(source, dict) and isinstance(destination, dict):
            target_field = str(destination.get("field", ""))
            if target_field in ("positive_conditioning", "negative_conditioning"):
                roles[str(source.get("node_id"))] = target_field.split("_", 1)[0]
    record = GenerationRecord(tool="InvokeAI", extra={"from": "invokeai_graph"})
    for node_id, node in nodes.items():
        if not isinstance(node, dict):
            continue
        kind = str(node.get("type", ""))
        if isinstance(node.get("model"), dict) and "model_loader" in kind:
            record.model = _as_text(node["model"].get("model_name") or node["model"].get("name"))
        if isinstance(node.get("prompt"), str):
            role = roles.get(node_id) or ("negative" if "negative" in node_id else "positive")
            if role == "negative":
                record.negative_prompt = node["prompt"]
            else:
                record.prompt = node["prompt"]
        if kind == "noise":
            record.seed = _as_int(node.get("seed"))
            record.size = _size(node.get("width"), node.get("height"))
        if "denoise" in kind:
            record.steps = _as_int(node.get("steps"))
            record.cfg_scale = _as_float(node.get("cfg_scale"))
            record.scheduler = _as_text(node.get("scheduler"))
    return record


def _split_bracketed_negative(prompt: str) -> tuple[str, str]:
    """Legacy InvokeAI wrote negative prompts inline in square brackets."""
    negatives = _BRACKETED.findall(prompt)
    if not negatives:
        return prompt.strip(), ""
    positive = _BRACKETED_WITH_SPACE.sub("", prompt)
    return positive.strip(), ", ".join(part.strip() for part in negatives if part.strip())


def parse_dream_command(line: str) -> GenerationRecord | None:
    """Parse a legacy InvokeAI / NMKD ``Dream`` command line.

    Example: ``"prompt [negative]" -s 50 -S 1234 -W 512 -H 512 -C 7.5 -A k_lms``; options may be
    glued to their values (``-s50``), and ``!fix`` / ``!mask`` commands name a file instead of a prompt.
    Only the first `MAX_DREAM_COMMAND_CHARS` characters are read.
    """
    text = line[:MAX_DREAM_COMMAND_CHARS].split(" # ", 1)[0].strip()
    if not text:
        return None
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    command = None
    if tokens and tokens[0].startswith("!"):
        command, tokens = tokens[0], tokens[1:]
    prompt_tokens: list[str] = []
    options: dict[str, list[str]] = {}
    current: str | None = None
    for token in tokens:
        if _DREAM_OPTION.match(token):
            name, glued = token, ""
            if not token.startswith("--"):
                for short in _DREAM_GLUED:
                    if token.startswith(short) and len(token) > len(short):
                        name, glued = short, token[len(short) :]
                        break
            current = name
            options.setdefault(name, [])
            if glued:
                options[name].append(glued)
        elif current is None:
            prompt_tokens.append(token)
        else:
            options[current].append(token)
    record = GenerationRecord(tool="InvokeAI")
    record.prompt, record.negative_prompt = _split_bracketed_negative(" ".join(prompt_tokens))
    if command:
        record.extra["command"] = command
        if command in ("!fix", "!mask") and record.prompt:  # these commands take a file, not a prompt
            record.extra["input_file"], record.prompt = record.prompt, ""
    width = height = None
    for name, values in options.items():
        value = " ".join(values)
        attribute = _DREAM_FIELDS.get(name)
        if attribute == "steps":
            record.steps = _as_int(value)
        elif attribute == "seed":
            record.seed = _as_int(value)
        elif attribute == "cfg_scale":
            record.cfg_scale = _as_float(value)
        elif attribute == "sampler":
            record.sampler = _as_text(value)
        elif attribute == "width":
            width = value
        elif attribute == "height":
            height = value
        else:
            record.extra[name.lstrip("-")] = value or True
    record.size = _size(width, height)
    if not record.settings_count and not command:  # a Dream line always carries options or a command
        return None
    return record


def _parse_sd_metadata(meta: dict[str, Any]) -> GenerationRecord:
    app = str(meta.get("app_id") or "")
    tool = "lstein/stable-diffusion (InvokeAI)" if "lstein" in app else "InvokeAI"
    images = meta.get("images")
    image = meta.get("image")
    if not isinstance(image, dict) and isinstance(images, list) and images and isinstance(images[0], dict):
        image = images[0]
    image = image if isinstance(image, dict) else {}
    raw_prompt = image.get("prompt")
    if isinstance(raw_prompt, list):
        parts = [
            item for item in raw_prompt if isinstance(item, dict) and isinstance(item.get("prompt"), str)
        ]
        if len(parts) == 1:
            prompt = parts[0]["prompt"]
        else:
            prompt = " ".join(f"{p['prompt'].strip()}:{_format_number(_weight(p))}" for p in parts)
    else:
        prompt = _as_text(raw_prompt) or ""
    record = GenerationRecord(
        tool=tool,
        model=_as_text(meta.get("model_id")) or _as_text(meta.get("model")),
        model_hash=_as_text(meta.get("model_hash")),
        sampler=_as_text(image.get("sampler")),
        steps=_as_int(image.get("steps")),
        cfg_scale=_as_float(image.get("cfg_scale")),
        seed=_as_int(image.get("seed")),
        size=_size(image.get("width"), image.get("height")),
    )
    record.prompt, record.negative_prompt = _split_bracketed_negative(prompt)
    for key in ("app_id", "app_version"):
        if meta.get(key):
            record.extra[key] = meta[key]
    for key in ("type", "init_img", "strength", "variations", "postprocessing"):
        if image.get(key):
            record.extra[key] = image[key]
    if isinstance(images, list) and len(images) > 1:
        record.extra["images_in_grid"] = len(images)
    return record


def _weight(part: dict[str, Any]) -> float:
    weight = _as_float(part.get("weight", 1))
    return 1.0 if weight is None else weight


def _merge(primary: GenerationRecord | None, secondary: GenerationRecord | None) -> GenerationRecord | None:
    if primary is None or secondary is None:
        return primary or secondary
    for name in (
        "prompt",
        "negative_prompt",
        "model",
        "model_hash",
        "sampler",
        "scheduler",
        "steps",
        "cfg_scale",
    ):
        if not getattr(primary, name) and getattr(secondary, name):
            setattr(primary, name, getattr(secondary, name))
    for name in ("seed", "size"):
        if getattr(primary, name) is None:
            setattr(primary, name, getattr(secondary, name))
    for key, value in secondary.extra.items():
        primary.extra.setdefault(key, value)
    return primary


# ---------------------------------------------------------------------------------- other generators


def _parse_novelai(comment: dict[str, Any], chunks: dict[str, str]) -> GenerationRecord:
    prompt = _as_text(comment.get("prompt")) or _as_text(chunks.get("Description")) or ""
    v4 = comment.get("v4_prompt")
    if not prompt and isinstance(v4, dict) and isinstance(v4.get("caption"), dict):
        prompt = _as_text(v4["caption"].get("base_caption")) or ""
    record = GenerationRecord(
        tool="NovelAI",
        prompt=prompt,
        negative_prompt=_as_text(comment.get("uc")) or "",
        model=_as_text(chunks.get("Source")),
        sampler=_as_text(comment.get("sampler")),
        scheduler=_as_text(comment.get("noise_schedule")),
        steps=_as_int(comment.get("steps")),
        cfg_scale=_as_float(comment.get("scale")),
        seed=_as_int(comment.get("seed")),
        size=_size(comment.get("width"), comment.get("height")),
    )
    for key in ("request_type", "strength", "noise", "version"):
        if comment.get(key) is not None:
            record.extra[key] = comment[key]
    if chunks.get("Generation time"):
        record.extra["generation_time"] = chunks["Generation time"]
    return record


def _looks_like_novelai(data: dict[str, Any]) -> bool:
    return (
        ("uc" in data and ("scale" in data or "steps" in data))
        or "v4_prompt" in data
        or "noise_schedule" in data
    )


def _parse_fooocus(data: dict[str, Any]) -> GenerationRecord:
    prompt = _as_text(data.get("prompt"))
    if not prompt and isinstance(data.get("full_prompt"), list):
        prompt = ", ".join(str(part) for part in data["full_prompt"] if not isinstance(part, dict | list))
    resolution = re.findall(r"\d+", str(data.get("resolution", "")))
    record = GenerationRecord(
        tool="Fooocus",
        prompt=prompt or "",
        negative_prompt=_as_text(data.get("negative_prompt")) or "",
        model=_model_name(data.get("base_model")),
        model_hash=_as_text(data.get("base_model_hash")),
        sampler=_as_text(data.get("sampler")),
        scheduler=_as_text(data.get("scheduler")),
        steps=_as_int(data.get("steps")),
        cfg_scale=_as_float(data.get("guidance_scale")),
        seed=_as_int(data.get("seed")),
        size=_size(*resolution[:2]) if len(resolution) >= 2 else None,
    )
    for key in ("version", "performance", "styles", "refiner_model", "sharpness"):
        if data.get(key) not in (None, "", "None"):
            record.extra[key] = data[key]
    return record


def _parse_swarmui(params: dict[str, Any]) -> GenerationRecord:
    record = GenerationRecord(
        tool="SwarmUI",
        prompt=_as_text(params.get("prompt")) or "",
        negative_prompt=_as_text(params.get("negativeprompt")) or "",
        model=_as_text(params.get("model")),
        sampler=_as_text(params.get("sampler")),
        scheduler=_as_text(params.get("scheduler")),
        steps=_as_int(params.get("steps")),
        cfg_scale=_as_float(params.get("cfgscale")),
        seed=_as_int(params.get("seed")),
        size=_size(params.get("width"), params.get("height")),
    )
    if params.get("swarm_version"):
        record.extra["swarm_version"] = params["swarm_version"]
    return record


def _first(data: dict[str, Any], *keys: str) -> Any:
    return next((data[key] for key in keys if data.get(key) not in (None, "")), None)


def _parse_easy_diffusion(data: dict[str, Any]) -> GenerationRecord:
    return GenerationRecord(
        tool="Easy Diffusion",
        prompt=_as_text(_first(data, "prompt", "Prompt")) or "",
        negative_prompt=_as_text(_first(data, "negative_prompt", "Negative Prompt")) or "",
        model=_model_name(_first(data, "use_stable_diffusion_model", "Stable Diffusion model")),
        sampler=_as_text(_first(data, "sampler_name", "Sampler")),
        steps=_as_int(_first(data, "num_inference_steps", "Steps")),
        cfg_scale=_as_float(_first(data, "guidance_scale", "Guidance Scale")),
        seed=_as_int(_first(data, "seed", "Seed")),
        size=_size(_first(data, "width", "Width"), _first(data, "height", "Height")),
    )


def _parse_draw_things(data: dict[str, Any]) -> GenerationRecord:
    size = _as_text(data.get("size"))
    record = GenerationRecord(
        tool="Draw Things",
        prompt=_as_text(data.get("c")) or "",
        negative_prompt=_as_text(data.get("uc")) or "",
        model=_as_text(data.get("model")),
        sampler=_as_text(data.get("sampler")),
        steps=_as_int(data.get("steps")),
        cfg_scale=_as_float(data.get("scale")),
        seed=_as_int(data.get("seed")),
        size=size.replace("×", "x") if size else None,
    )
    for key in ("strength", "seed_mode", "lora", "upscaler"):
        if data.get(key) not in (None, "", []):
            record.extra[key] = data[key]
    return record


def parse_midjourney_description(text: str) -> GenerationRecord | None:
    """Parse a Midjourney ``Description``: ``<prompt> --ar 2:1 --v 6 Job ID: <uuid>``."""
    job = _MIDJOURNEY_JOB.search(text)
    if job is None:
        return None
    command = text[: job.start()].strip()
    prompt, _, parameter_text = command.partition(" --")
    parameters = (
        {name.lower(): (value or True) for name, value in _MIDJOURNEY_PARAM.findall("--" + parameter_text)}
        if parameter_text
        else {}
    )
    record = GenerationRecord(tool="Midjourney", prompt=prompt.strip(), extra={"job_id": job.group(1)})
    if parameters:
        record.extra["parameters"] = parameters
    version = parameters.get("niji") or parameters.get("v") or parameters.get("version")
    if version:
        record.model = (
            f"{'niji' if 'niji' in parameters else 'Midjourney v'}{'' if version is True else version}"
        )
    record.seed = _as_int(parameters.get("seed"))
    return record


# ------------------------------------------------------------------------------------------ dispatch


def _record_from_json(data: Any, hint: str = "") -> GenerationRecord | None:
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("sui_image_params"), dict):
        return _parse_swarmui(data["sui_image_params"])
    if "c" in data and any(key in data for key in ("sampler", "seed", "steps", "model", "scale")):
        return _parse_draw_things(data)
    if "use_stable_diffusion_model" in data or "Stable Diffusion model" in data:
        return _parse_easy_diffusion(data)
    if "fooocus" in hint.lower() or "full_prompt" in data or ("base_model" in data and "prompt" in data):
        return _parse_fooocus(data)
    if "invokeai_metadata" in data:
        inner = data["invokeai_metadata"]
        inner = _load_json(inner) if isinstance(inner, str) else inner
        return _parse_invokeai_metadata(inner) if isinstance(inner, dict) else None
    if "prompt" in data and "workflow" in data:
        prompt, workflow = data["prompt"], data["workflow"]
        return parse_comfyui(
            _load_json(prompt) if isinstance(prompt, str) else prompt,
            _load_json(workflow) if isinstance(workflow, str) else workflow,
        )
    if _looks_like_novelai(data):
        return _parse_novelai(data, {})
    if any(isinstance(node, dict) and "class_type" in node for node in data.values()):
        return parse_comfyui(data, None)
    return None


def _record_from_free_text(text: str, hint: str = "") -> GenerationRecord | None:
    """A record from text in a field any software may use (JPEG comment, EXIF/XMP UserComment)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return _record_from_json(_load_json(stripped), hint)
    if "Job ID:" in stripped:
        return parse_midjourney_description(stripped)
    if "Steps:" in stripped:
        record = parse_a1111_parameters(stripped)
        if record is not None and "fooocus" in hint.lower():
            record.tool = "Fooocus"
        return record
    return None


@dataclass
class _Search:
    records: list[GenerationRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, record: GenerationRecord | None, found_in: str) -> None:
        if record is not None:
            record.found_in = record.found_in or found_in
            self.records.append(record)

    def json_chunk(self, chunks: dict[str, str], key: str) -> Any:
        if key not in chunks:
            return None
        data = _load_json(chunks[key])
        if data is None:
            self.problems.append(f"PNG text chunk '{key}' is not valid JSON")
        return data


def _search_chunks(chunks: dict[str, str], search: _Search) -> None:
    where = "PNG text chunk"
    if "invokeai_metadata" in chunks or "invokeai_graph" in chunks:
        meta = search.json_chunk(chunks, "invokeai_metadata")
        graph = search.json_chunk(chunks, "invokeai_graph")
        record = _parse_invokeai_metadata(meta) if isinstance(meta, dict) else None
        if record is None and isinstance(graph, dict):
            record = _parse_invokeai_graph(graph)
        search.add(
            record, f"{where} 'invokeai_metadata'" if isinstance(meta, dict) else f"{where} 'invokeai_graph'"
        )
    if "sd-metadata" in chunks or "Dream" in chunks:
        meta = search.json_chunk(chunks, "sd-metadata")
        legacy = _parse_sd_metadata(meta) if isinstance(meta, dict) else None
        dream = parse_dream_command(chunks["Dream"]) if "Dream" in chunks else None
        if legacy is not None and dream is not None and dream.prompt:
            legacy.prompt, legacy.negative_prompt = (
                dream.prompt,
                dream.negative_prompt or legacy.negative_prompt,
            )
        found = "'sd-metadata'" if legacy is not None else "'Dream'"
        search.add(_merge(legacy, dream), f"{where} {found}")
    if "parameters" in chunks:
        text = chunks["parameters"]
        hint = "fooocus" if "fooocus_scheme" in chunks else ""
        if text.lstrip().startswith("{"):
            data = search.json_chunk(chunks, "parameters")
            search.add(_record_from_json(data, hint), f"{where} 'parameters'")
        else:
            record = parse_a1111_parameters(text)
            if record is None and text.strip():
                search.problems.append("PNG text chunk 'parameters' has no recognisable generation settings")
            elif record is not None and hint:
                record.tool = "Fooocus"
            search.add(record, f"{where} 'parameters'")
    prompt_text = chunks.get("prompt", "")
    if "workflow" in chunks or prompt_text.lstrip().startswith("{"):
        prompt = search.json_chunk(chunks, "prompt") if prompt_text.lstrip().startswith("{") else None
        workflow = search.json_chunk(chunks, "workflow")
        search.add(parse_comfyui(prompt, workflow), f"{where} '{'prompt' if prompt else 'workflow'}'")
    elif "use_stable_diffusion_model" in chunks or ("prompt" in chunks and "negative_prompt" in chunks):
        search.add(_parse_easy_diffusion(chunks), f"{where} 'prompt'")
    if chunks.get("Software", "").strip() == "NovelAI" or "Comment" in chunks:
        comment = _load_json(chunks.get("Comment"))
        if isinstance(comment, dict) and (
            chunks.get("Software", "").strip() == "NovelAI" or _looks_like_novelai(comment)
        ):
            search.add(_parse_novelai(comment, chunks), f"{where} 'Comment'")
        elif chunks.get("Software", "").strip() == "NovelAI":
            if "Comment" in chunks:
                search.problems.append("PNG text chunk 'Comment' of a NovelAI image is not valid JSON")
            record = GenerationRecord(tool="NovelAI", prompt=chunks.get("Description", "").strip())
            record.model = _as_text(chunks.get("Source"))
            record.extra["marker"] = "PNG text chunk 'Software' = NovelAI"
            search.add(record, f"{where} 'Software'")
        elif "Comment" in chunks:
            search.add(_record_from_free_text(chunks["Comment"]), f"{where} 'Comment'")
    for key in ("Description", "comment"):
        if key in chunks and not search.records:
            label = "JPEG comment" if key == "comment" else f"{where} '{key}'"
            record = _record_from_free_text(chunks[key])
            if record is not None and record.tool == "Midjourney" and chunks.get("Author"):
                record.extra["author"] = chunks["Author"]
            search.add(record, label)


def _search_exif(raw_exif: bytes, search: _Search) -> None:
    exif = parse_exif(raw_exif)
    software = exif_text(exif.get("Software")) or ""
    comment = decode_user_comment(exif.get("UserComment"))
    if comment:
        search.add(_record_from_free_text(comment, software), "EXIF UserComment")
    # Some ComfyUI save nodes put "prompt:{...}" / "workflow:{...}" into IFD0 text tags of JPEG/WebP.
    graphs: dict[str, Any] = {}
    for tag in ("Make", "Model", "ImageDescription"):
        text = exif_text(exif.get(tag)) or ""
        for label in ("prompt", "workflow"):
            if text.startswith(f"{label}:"):
                graphs[label] = _load_json(text[len(label) + 1 :])
    if graphs:
        search.add(parse_comfyui(graphs.get("prompt"), graphs.get("workflow")), "EXIF IFD0 text tags")


def _search_xmp(packet: str, search: _Search) -> None:
    if not any(marker in packet for marker in ("UserComment", "Job ID", "Steps:", "Draw Things")):
        return
    xmp = parse_xmp(packet)
    hint = xmp.text("xmp:CreatorTool") or ""
    for name in ("exif:UserComment", "dc:description"):
        text = xmp.text(name)
        if text:
            search.add(_record_from_free_text(text, hint), f"XMP {name}")
            if search.records:
                return


def find_generation_records(image: LoadedImage) -> tuple[list[GenerationRecord], list[str]]:
    """Every generation record in an image's text, and what looked like one but could not be read.

    Parameters
    ----------
    image:
        The loaded image (its `text_chunks`, `exif` and `xmp` are read).

    Returns
    -------
    records, problems
        Distinct records (a tool's record repeated in two places is kept once) and sentences naming
        generator-like fields that were unreadable.
    """
    search = _Search()
    chunks = _clean_chunks(image.text_chunks or {})
    if chunks:
        _search_chunks(chunks, search)
    if image.exif:
        _search_exif(image.exif, search)
    packet = clean_text(image.xmp)[0] if image.xmp else chunks.get("XML:com.adobe.xmp")
    if packet and not search.records:
        _search_xmp(packet, search)
    unique: dict[tuple[str, str, int | None], GenerationRecord] = {}
    for record in search.records:
        if not _says_anything(record):
            search.problems.append(
                f"{record.found_in} has the shape of {record.tool} metadata but no content"
            )
            continue
        unique.setdefault((record.tool, record.prompt, record.seed), record)
    return list(unique.values()), search.problems


def _clean_chunks(chunks: dict[str, str]) -> dict[str, str]:
    """Text chunks as valid Unicode, whoever built the image record (intake already cleans them)."""
    return {clean_text(str(key))[0]: clean_text(str(value))[0] for key, value in chunks.items()}


def _says_anything(record: GenerationRecord) -> bool:
    markers = ("job_id", "command", "marker")
    return bool(
        record.prompt
        or record.negative_prompt
        or record.settings_count
        or any(record.extra.get(m) for m in markers)
    )


def _describe(record: GenerationRecord) -> str:
    parts = []
    if record.model:
        parts.append(f"model {_quoted(record.model)}")
    if record.sampler:
        parts.append(f"sampler {_quoted(record.sampler)}")
    if record.steps is not None:
        parts.append(f"{_quoted(str(record.steps))} steps")
    if record.cfg_scale is not None:
        parts.append(f"CFG {_format_number(record.cfg_scale)}")
    if record.seed is not None:
        parts.append(f"seed {_quoted(str(record.seed))}")
    if record.size:
        parts.append(f"size {_quoted(record.size)}")
    if parts:
        return f"Generation parameters from {record.tool} found: {', '.join(parts)}."
    if record.prompt:
        return f"A generation record from {record.tool} was found, with a prompt but no sampling settings."
    return f"A generation record from {record.tool} was found, without prompt or sampling settings."


def record_strength(record: GenerationRecord) -> float:
    """How decisive a record is: complete records are near-certain, bare markers less so."""
    identified = record.settings_count + bool(record.extra.get("job_id"))
    if record.prompt and identified >= 2:
        return COMPLETE_RECORD_STRENGTH
    if record.prompt or identified or record.extra.get("command"):
        return PARTIAL_RECORD_STRENGTH
    return BARE_RECORD_STRENGTH  # only the generator's own marker (e.g. Software = NovelAI)


def generator_text_evidence(image: LoadedImage) -> list[Evidence]:
    """Evidence from generation records (prompt, model, seed, ...) embedded in the image's text.

    Parameters
    ----------
    image:
        The loaded image.

    Returns
    -------
    list[Evidence]
        One ai-generated Evidence per record (strength 0.95 for a complete record), or at most one
        informative Evidence when generator-like fields could not be read. Empty when the image
        carries no such text. Never raises.
    """
    if not image.text_chunks and not image.exif and not image.xmp:
        return []
    try:
        records, problems = find_generation_records(image)
        return _records_as_evidence(records, problems)
    except Exception:  # hostile text must never take the batch down
        finding = (
            "Text fields that may hold generator metadata could not be analysed: their structure is "
            "damaged or unusual."
        )
        return [Evidence(SOURCE, finding, "none", 0.0, data={"analysed": False})]


def _records_as_evidence(records: list[GenerationRecord], problems: list[str]) -> list[Evidence]:
    evidence = []
    for record in records:
        prompt = record.prompt if len(record.prompt) <= 300 else record.prompt[:299] + "…"
        detail = f"Found in {record.found_in}." + (f" Prompt: {prompt}" if prompt else "")
        detail += " Generators write these records themselves; cameras never do, and they are rarely forged."
        evidence.append(
            Evidence(
                SOURCE, _describe(record), "ai-generated", record_strength(record), detail, record.to_dict()
            )
        )
    if not evidence and problems:
        finding = (
            "Text that looks like generator metadata was found but could not be read: "
            + "; ".join(problems)
            + "."
        )
        evidence.append(Evidence(SOURCE, finding, "none", 0.0, data={"problems": problems}))
    return evidence


__all__ = [
    "MAX_DREAM_COMMAND_CHARS",
    "MAX_SETTINGS",
    "MAX_SETTINGS_LINE_CHARS",
    "GenerationRecord",
    "a1111_settings",
    "find_generation_records",
    "generator_text_evidence",
    "parse_a1111_parameters",
    "parse_comfyui",
    "parse_dream_command",
    "parse_midjourney_description",
    "record_strength",
]
