"""Generation records left by image generators in PNG chunks, EXIF UserComment, XMP and comments."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import piexif
import piexif.helper
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pixelsleuth.evidence.generator_text import (
    GenerationRecord,
    find_generation_records,
    generator_text_evidence,
    parse_a1111_parameters,
    parse_dream_command,
    parse_midjourney_description,
)
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake import load_image
from pixelsleuth.intake.image import LoadedImage

DEV_SD = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dev" / "fake" / "stable-diffusion-v1"
)
DEV_SD_ABSOLUTE = Path("/work/shared/data/dev/fake/stable-diffusion-v1")


def write_png(path: Path, chunks: dict[str, str], itxt: dict[str, str] | None = None) -> LoadedImage:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value)
    Image.new("RGB", (16, 16), (40, 80, 120)).save(path, pnginfo=info)
    return load_image(path)


def only_record(image: LoadedImage) -> GenerationRecord:
    records, problems = find_generation_records(image)
    assert len(records) == 1, (records, problems)
    return records[0]


def single_ai_evidence(image: LoadedImage) -> Evidence:
    evidence = generator_text_evidence(image)
    assert len(evidence) == 1
    item = evidence[0]
    assert item.source == "generator-text" and item.points_to == "ai-generated"
    json.dumps(item.to_dict())
    return item


A1111_PARAMETERS = (
    "portrait of an astronaut, (masterpiece:1.2), golden hour\n"
    "second line of the prompt\n"
    "Negative prompt: blurry, lowres, watermark\n"
    "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "detail: 1a2b3c4d, style: 5e6f7a8b", '
    "Denoising strength: 0.4, Version: v1.9.4"
)


# ------------------------------------------------------------------------------------ AUTOMATIC1111


def test_a1111_png_parameters_with_quoted_comma_value(tmp_path: Path) -> None:
    image = write_png(tmp_path / "a1111.png", {"parameters": A1111_PARAMETERS})
    record = only_record(image)
    assert record.tool == "AUTOMATIC1111"
    assert (
        record.prompt == "portrait of an astronaut, (masterpiece:1.2), golden hour\nsecond line of the prompt"
    )
    assert record.negative_prompt == "blurry, lowres, watermark"
    assert (record.steps, record.sampler, record.scheduler) == (20, "Euler a", "Karras")
    assert (record.cfg_scale, record.seed, record.size) == (7.0, 1234, "512x768")
    assert (record.model, record.model_hash) == ("v1-5-pruned-emaonly", "6ce0161689")
    assert record.extra["Lora hashes"] == "detail: 1a2b3c4d, style: 5e6f7a8b"
    assert record.extra["Version"] == "v1.9.4" and record.extra["Denoising strength"] == "0.4"

    evidence = single_ai_evidence(image)
    assert evidence.strength == pytest.approx(0.95)
    assert evidence.finding.startswith(
        "Generation parameters from AUTOMATIC1111 found: model v1-5-pruned-emaonly, sampler Euler a, 20 steps"
    )
    assert "seed 1234" in evidence.finding


@pytest.mark.parametrize(
    ("suffix", "tool"),
    [
        ("Version: f2.0.1v1.10.1-previous-313-g8a042934", "Stable Diffusion WebUI Forge"),
        ("App: SD.Next, Version: 8d8d8a4", "SD.Next"),
        ("Version: Fooocus v2.5.5", "Fooocus"),
        ("Version: ComfyUI", "ComfyUI"),
    ],
)
def test_a1111_style_front_ends_are_told_apart(suffix: str, tool: str) -> None:
    record = parse_a1111_parameters(f"a cat\nSteps: 30, Sampler: DPM++ 2M, Seed: 5, {suffix}")
    assert record is not None and record.tool == tool and record.steps == 30


def test_a1111_text_without_settings_line_is_not_a_record() -> None:
    assert parse_a1111_parameters("just some words about Steps") is None
    assert parse_a1111_parameters("") is None


def test_a1111_jpeg_with_unicode_user_comment(tmp_path: Path) -> None:
    comment = piexif.helper.UserComment.dump(
        A1111_PARAMETERS.replace("astronaut", "astronaute élégant"), "unicode"
    )
    buffer = io.BytesIO()
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    Image.new("RGB", (16, 16)).save(buffer, "JPEG", exif=exif)
    path = tmp_path / "a1111.jpg"
    path.write_bytes(buffer.getvalue())
    record = only_record(load_image(path))
    assert record.found_in == "EXIF UserComment"
    assert record.prompt.startswith("portrait of an astronaute élégant")
    assert record.seed == 1234 and record.extra["Lora hashes"] == "detail: 1a2b3c4d, style: 5e6f7a8b"
    assert single_ai_evidence(load_image(path)).strength == pytest.approx(0.95)


def test_fooocus_jpeg_exif_layout(tmp_path: Path) -> None:
    parameters = {
        "prompt": "a lighthouse in a storm",
        "negative_prompt": "",
        "base_model": "juggernautXL_v8Rundiffusion.safetensors",
        "steps": 30,
        "guidance_scale": 4,
        "sampler": "dpmpp_2m_sde_gpu",
        "scheduler": "karras",
        "seed": "4242",
        "resolution": "(1152, 896)",
        "version": "Fooocus v2.5.5",
    }
    exif = Image.Exif()
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x9286] = json.dumps(parameters)
    exif[0x927C] = "fooocus"
    path = tmp_path / "fooocus.jpg"
    Image.new("RGB", (16, 16)).save(path, exif=exif)
    record = only_record(load_image(path))
    assert record.tool == "Fooocus" and record.seed == 4242 and record.size == "1152x896"
    assert record.model == "juggernautXL_v8Rundiffusion.safetensors" and record.cfg_scale == 4.0


# ------------------------------------------------------------------------------------------ ComfyUI


def comfy_api_graph() -> dict:
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 987654321,
                "steps": 30,
                "cfg": 6.5,
                "sampler_name": "dpmpp_2m",
                "scheduler": "karras",
                "denoise": 1.0,
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "SDXL/sd_xl_base_1.0.safetensors"},
        },
        "10": {
            "class_type": "LoraLoader",
            "inputs": {"lora_name": "detail_tweaker.safetensors", "strength_model": 0.8, "model": ["4", 0]},
        },
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a red fox in fresh snow", "clip": ["10", 1]},
        },
        "7": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "blurry, jpeg artifacts", "clip": ["10", 1]},
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


def comfy_workflow() -> dict:
    return {
        "last_node_id": 9,
        "last_link_id": 9,
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd_xl_base_1.0.safetensors"]},
            {"id": 5, "type": "EmptyLatentImage", "widgets_values": [832, 1216, 1]},
            {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a lighthouse at dawn"]},
            {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["text, watermark"]},
            {
                "id": 3,
                "type": "KSampler",
                "inputs": [
                    {"name": "model", "type": "MODEL", "link": 1},
                    {"name": "positive", "type": "CONDITIONING", "link": 4},
                    {"name": "negative", "type": "CONDITIONING", "link": 6},
                    {"name": "latent_image", "type": "LATENT", "link": 2},
                ],
                "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1],
            },
        ],
        "links": [
            [1, 4, 0, 3, 0, "MODEL"],
            [2, 5, 0, 3, 3, "LATENT"],
            [4, 6, 0, 3, 1, "CONDITIONING"],
            [6, 7, 0, 3, 2, "CONDITIONING"],
        ],
        "version": 0.4,
    }


def test_comfyui_png_with_prompt_and_workflow(tmp_path: Path) -> None:
    chunks = {"prompt": json.dumps(comfy_api_graph()), "workflow": json.dumps(comfy_workflow())}
    image = write_png(tmp_path / "comfy.png", chunks)
    record = only_record(image)
    assert record.tool == "ComfyUI" and record.found_in == "PNG text chunk 'prompt'"
    assert record.prompt == "a red fox in fresh snow" and record.negative_prompt == "blurry, jpeg artifacts"
    assert (record.seed, record.steps, record.cfg_scale) == (987654321, 30, 6.5)
    assert (record.sampler, record.scheduler) == ("dpmpp_2m", "karras")
    assert record.model == "sd_xl_base_1.0.safetensors"  # reached through the LoRA loader
    assert record.size == "1024x1024"
    assert record.extra["loras"] == ["detail_tweaker.safetensors"]
    evidence = single_ai_evidence(image)
    assert evidence.strength == pytest.approx(0.95) and "ComfyUI" in evidence.finding


def test_comfyui_workflow_only(tmp_path: Path) -> None:
    image = write_png(tmp_path / "workflow.png", {"workflow": json.dumps(comfy_workflow())})
    record = only_record(image)
    assert record.tool == "ComfyUI"
    assert record.prompt == "a lighthouse at dawn" and record.negative_prompt == "text, watermark"
    assert (record.seed, record.steps, record.cfg_scale) == (156680208700286, 20, 8.0)
    assert (record.sampler, record.scheduler, record.size) == ("euler", "normal", "832x1216")
    assert record.model == "sd_xl_base_1.0.safetensors"


def test_comfyui_sampler_custom_advanced_graph() -> None:
    graph = {
        "13": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {"noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["17", 0]},
        },
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 31337}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["26", 0]}},
        "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["30", 0], "clip": ["11", 0]}},
        "30": {"class_type": "PrimitiveString", "inputs": {"value": "a cosy reading nook"}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {
            "class_type": "BasicScheduler",
            "inputs": {"scheduler": "simple", "steps": 24, "model": ["12", 0]},
        },
        "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
    }
    image = LoadedImage(
        None,
        b"",
        "",
        "PNG",
        np.zeros((2, 2, 3), np.uint8),
        "RGB",
        8,
        text_chunks={"prompt": json.dumps(graph)},
    )
    record = only_record(image)
    assert (record.seed, record.steps, record.sampler, record.scheduler) == (31337, 24, "euler", "simple")
    assert record.prompt == "a cosy reading nook" and record.model == "flux1-dev.safetensors"


# ----------------------------------------------------------------------------------------- InvokeAI


def test_invokeai_metadata_png(tmp_path: Path) -> None:
    metadata = {
        "app_version": "3.4.0",
        "generation_mode": "txt2img",
        "positive_prompt": "a watercolour map of an imaginary island",
        "negative_prompt": "text",
        "width": 768,
        "height": 512,
        "seed": 2024,
        "cfg_scale": 7.5,
        "steps": 25,
        "scheduler": "euler_a",
        "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1", "model_type": "main"},
    }
    image = write_png(tmp_path / "invoke.png", {"invokeai_metadata": json.dumps(metadata)})
    record = only_record(image)
    assert record.tool == "InvokeAI" and record.prompt == "a watercolour map of an imaginary island"
    assert (record.model, record.seed, record.steps, record.size) == (
        "stable-diffusion-v1-5",
        2024,
        25,
        "768x512",
    )
    assert record.extra["app_version"] == "3.4.0"
    assert single_ai_evidence(image).strength == pytest.approx(0.95)


def test_invokeai_graph_without_metadata() -> None:
    graph = {
        "nodes": {
            "main_model_loader": {"type": "main_model_loader", "model": {"model_name": "dreamshaper-8"}},
            "positive_conditioning": {"type": "compel", "prompt": "castle on a hill"},
            "negative_conditioning": {"type": "compel", "prompt": "fog"},
            "noise": {"type": "noise", "seed": 77, "width": 512, "height": 512},
            "denoise_latents": {
                "type": "denoise_latents",
                "steps": 30,
                "cfg_scale": 6,
                "scheduler": "dpmpp_2m",
            },
        },
        "edges": [
            {
                "source": {"node_id": "positive_conditioning", "field": "conditioning"},
                "destination": {"node_id": "denoise_latents", "field": "positive_conditioning"},
            }
        ],
    }
    chunks = {"invokeai_graph": json.dumps(graph)}
    image = LoadedImage(None, b"", "", "PNG", np.zeros((2, 2, 3), np.uint8), "RGB", 8, text_chunks=chunks)
    record = only_record(image)
    assert (record.prompt, record.negative_prompt, record.model) == (
        "castle on a hill",
        "fog",
        "dreamshaper-8",
    )
    assert (record.seed, record.steps, record.size) == (77, 30, "512x512")


def test_legacy_invokeai_dream_and_sd_metadata(tmp_path: Path) -> None:
    sd_metadata = {
        "model": "stable diffusion",
        "model_id": "stable-diffusion-1.4",
        "model_hash": "fe4efff1e174c627256e44ec2991ba279b3816e364b49f9be2abc0b3ff3f8556",
        "app_id": "invoke-ai/InvokeAI",
        "app_version": "v2.0.0",
        "image": {
            "prompt": [{"prompt": "a tiny house in a forest", "weight": 1.0}],
            "steps": 40,
            "cfg_scale": 7.5,
            "seed": 5551212,
            "width": 512,
            "height": 640,
            "sampler": "k_euler_a",
            "type": "txt2img",
        },
    }
    chunks = {
        "Dream": (
            '"a tiny house in a forest [people, cars]" -s 40 -S 5551212 -W 512 -H 640 -C 7.5 -A k_euler_a'
        ),
        "sd-metadata": json.dumps(sd_metadata),
    }
    record = only_record(write_png(tmp_path / "dream.png", chunks))
    assert record.tool == "InvokeAI"
    assert record.prompt == "a tiny house in a forest" and record.negative_prompt == "people, cars"
    assert (record.seed, record.steps, record.size, record.sampler) == (5551212, 40, "512x640", "k_euler_a")
    assert record.model_hash.startswith("fe4efff1")


@pytest.mark.parametrize(
    ("line", "prompt", "steps", "seed", "sampler"),
    [
        ("banana sushi -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms", "banana sushi", 50, 42, "k_lms"),
        (
            '"a quiet harbour, at dusk" -s30 -W512 -H512 -C7.5 -Ak_heun -S99',
            "a quiet harbour, at dusk",
            30,
            99,
            "k_heun",
        ),
        ("two owls -s 20 -S 7 -W 512 -H 512 -C 7.5 --grid -A ddim # [7, 8, 9]", "two owls", 20, 7, "ddim"),
    ],
)
def test_dream_command_lines(line: str, prompt: str, steps: int, seed: int, sampler: str) -> None:
    record = parse_dream_command(line)
    assert record is not None
    assert (record.prompt, record.steps, record.seed, record.sampler) == (prompt, steps, seed, sampler)
    assert record.size == "512x512"


def test_dream_postprocessing_command_has_no_prompt() -> None:
    record = parse_dream_command("!mask ./pictures/portrait.png -tm hair 0.5")
    assert record is not None and record.prompt == ""
    assert record.extra["command"] == "!mask" and record.extra["tm"] == "hair 0.5"
    assert parse_dream_command("just words") is None


# ---------------------------------------------------------------------------------- other generators


def test_novelai_png(tmp_path: Path) -> None:
    comment = {
        "prompt": "1girl, library, warm light",
        "steps": 28,
        "height": 1216,
        "width": 832,
        "scale": 5.0,
        "uncond_scale": 1.0,
        "seed": 3141592,
        "sampler": "k_euler_ancestral",
        "noise_schedule": "native",
        "uc": "lowres, bad anatomy",
    }
    chunks = {
        "Title": "AI generated image",
        "Description": "1girl, library, warm light",
        "Software": "NovelAI",
        "Source": "Stable Diffusion XL C1E1DE52",
        "Generation time": "5.1",
        "Comment": json.dumps(comment),
    }
    image = write_png(tmp_path / "nai.png", chunks)
    record = only_record(image)
    assert record.tool == "NovelAI" and record.prompt == "1girl, library, warm light"
    assert record.negative_prompt == "lowres, bad anatomy" and record.model == "Stable Diffusion XL C1E1DE52"
    assert (record.seed, record.steps, record.cfg_scale, record.size) == (3141592, 28, 5.0, "832x1216")
    assert single_ai_evidence(image).strength == pytest.approx(0.95)


def test_novelai_with_broken_comment_still_reports_the_marker(tmp_path: Path) -> None:
    chunks = {"Software": "NovelAI", "Description": "a fox", "Comment": "{broken"}
    evidence = single_ai_evidence(write_png(tmp_path / "nai.png", chunks))
    assert evidence.strength < 0.95 and evidence.data["prompt"] == "a fox"
    bare = single_ai_evidence(write_png(tmp_path / "bare.png", {"Software": "NovelAI"}))
    assert bare.strength == pytest.approx(0.7)


def test_fooocus_swarmui_and_easy_diffusion_json(tmp_path: Path) -> None:
    fooocus = {
        "prompt": "isometric city",
        "negative_prompt": "",
        "full_prompt": ["isometric city, highly detailed"],
        "base_model": "juggernautXL.safetensors",
        "steps": 30,
        "guidance_scale": 4,
        "seed": "12",
        "resolution": "(1024, 1024)",
        "version": "Fooocus v2.5.5",
    }
    record = only_record(
        write_png(tmp_path / "f.png", {"parameters": json.dumps(fooocus), "fooocus_scheme": "fooocus"})
    )
    assert (record.tool, record.prompt, record.seed, record.size) == (
        "Fooocus",
        "isometric city",
        12,
        "1024x1024",
    )

    swarm = {
        "sui_image_params": {
            "prompt": "a moth",
            "negativeprompt": "x",
            "model": "flux",
            "seed": 3,
            "steps": 4,
        }
    }
    record = only_record(write_png(tmp_path / "s.png", {"parameters": json.dumps(swarm)}))
    assert (record.tool, record.prompt, record.seed, record.steps) == ("SwarmUI", "a moth", 3, 4)

    easy = {
        "prompt": "a teapot",
        "negative_prompt": "cracks",
        "seed": "8",
        "use_stable_diffusion_model": "C:\\models\\sd-v1-4.ckpt",
        "num_inference_steps": "25",
        "guidance_scale": "7.5",
        "width": "512",
        "height": "512",
    }
    record = only_record(write_png(tmp_path / "e.png", easy))
    assert (record.tool, record.prompt, record.model, record.steps) == (
        "Easy Diffusion",
        "a teapot",
        "sd-v1-4.ckpt",
        25,
    )


def test_draw_things_xmp(tmp_path: Path) -> None:
    settings_json = json.dumps(
        {
            "c": "a koi pond",
            "uc": "blur",
            "seed": 1,
            "steps": 8,
            "sampler": "DPM++ 2M",
            "model": "sd_v1.5_f16.ckpt",
            "scale": 4.5,
            "size": "512x512",
        }
    ).replace('"', "&quot;")
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmp:CreatorTool="Draw Things">'
        f'<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">{settings_json}</rdf:li></rdf:Alt>'
        "</exif:UserComment></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    record = only_record(write_png(tmp_path / "dt.png", {}, itxt={"XML:com.adobe.xmp": packet}))
    assert (record.tool, record.prompt, record.negative_prompt, record.seed) == (
        "Draw Things",
        "a koi pond",
        "blur",
        1,
    )
    assert record.found_in == "XMP exif:UserComment"


def test_midjourney_description(tmp_path: Path) -> None:
    description = (
        "a glass whale over the city --ar 2:1 --stylize 80 --v 6 Job ID: a7421d2f-b262-44f9-977c-ac23e9c7d3e3"
    )
    image = write_png(tmp_path / "mj.png", {"Description": description, "Author": "someone"})
    record = only_record(image)
    assert record.tool == "Midjourney" and record.prompt == "a glass whale over the city"
    assert record.model == "Midjourney v6" and record.extra["job_id"].startswith("a7421d2f")
    assert record.extra["parameters"]["ar"] == "2:1" and record.extra["author"] == "someone"
    assert single_ai_evidence(image).strength >= 0.9
    assert parse_midjourney_description("a plain caption without a job") is None


def test_jpeg_comment_with_parameters(tmp_path: Path) -> None:
    path = tmp_path / "comment.jpg"
    Image.new("RGB", (16, 16)).save(path, comment=A1111_PARAMETERS.encode())
    record = only_record(load_image(path))
    assert record.found_in == "JPEG comment" and record.seed == 1234


# ------------------------------------------------------------------------------ malformed / ordinary


@pytest.mark.parametrize(
    "chunks",
    [
        {"prompt": "{not json", "workflow": "[1, 2"},
        {"invokeai_metadata": "{{{", "invokeai_graph": "nope"},
        {"sd-metadata": "null"},
        {"parameters": '{"truncated": '},
        {"parameters": "a caption somebody typed"},
        {"Dream": ""},
        {"Comment": "{]", "Description": "holiday snap"},
        {"workflow": json.dumps({"nodes": "not a list"})},
        {"prompt": json.dumps({"1": {"class_type": 5, "inputs": None}})},
        {"comment": "CREATOR: gd-jpeg v1.0 (using IJG JPEG v62), quality = 90"},
    ],
)
def test_malformed_or_ordinary_text_is_at_most_informative(tmp_path: Path, chunks: dict[str, str]) -> None:
    image = LoadedImage(None, b"", "", "PNG", np.zeros((2, 2, 3), np.uint8), "RGB", 8, text_chunks=chunks)
    evidence = generator_text_evidence(image)
    assert len(evidence) <= 1
    for item in evidence:
        assert item.points_to == "none" and item.strength == 0.0
        json.dumps(item.to_dict())


def test_image_without_text_is_free() -> None:
    image = LoadedImage(None, b"", "", "JPEG", np.zeros((2, 2, 3), np.uint8), "RGB", 8)
    assert generator_text_evidence(image) == []


KEYS = st.sampled_from(
    [
        "parameters",
        "prompt",
        "workflow",
        "invokeai_metadata",
        "invokeai_graph",
        "sd-metadata",
        "Dream",
        "Comment",
        "Description",
        "Software",
        "comment",
        "negative_prompt",
        "fooocus_scheme",
    ]
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.dictionaries(KEYS, st.text(max_size=200) | JSONISH.map(json.dumps), max_size=5))
def test_generator_text_never_raises(chunks: dict[str, str]) -> None:
    image = LoadedImage(None, b"", "", "PNG", np.zeros((2, 2, 3), np.uint8), "RGB", 8, text_chunks=chunks)
    for item in generator_text_evidence(image):
        assert item.source == "generator-text" and 0.0 <= item.strength <= 1.0
        json.dumps(item.to_dict())


# -------------------------------------------------------------------------------------- shared data


def test_most_stable_diffusion_dev_pngs_yield_a_record() -> None:
    folder = next((path for path in (DEV_SD, DEV_SD_ABSOLUTE) if path.is_dir()), None)
    if folder is None:
        pytest.skip("shared data (dev/fake/stable-diffusion-v1) is not available")
    with_text = parsed = 0
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            chunks = {str(k): str(v) for k, v in image.text.items()}
        if not chunks:
            continue
        with_text += 1
        image = LoadedImage(
            str(path), b"", "", "PNG", np.zeros((1, 1, 3), np.uint8), "RGB", 8, text_chunks=chunks
        )
        records, _ = find_generation_records(image)
        parsed += any(record.prompt for record in records)
    assert with_text >= 10
    # Measured 86 of 87 (the one miss is a "!mask" post-processing command, which has no prompt).
    assert parsed / with_text >= 0.9
