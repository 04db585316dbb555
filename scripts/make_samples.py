"""Regenerate the demo images in samples/ (run once; the results are committed).

    python scripts/make_samples.py samples/

The pictures are public-domain / CC0 photos shipped with scikit-image (see samples/README.md); this
script adds to each the provenance marker the demo is about. They are real photos: a marker here
demonstrates what pixelsleuth reads from the file, not what the pixels are.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import c2pa
import cv2
import numpy as np
import piexif
import skimage.data
from imwatermark import WatermarkEncoder
from PIL import Image
from PIL.PngImagePlugin import PngInfo

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110


def _load_test_certificates():
    """The throw-away C2PA certificate helper lives with the tests; load it by path."""
    path = Path(__file__).resolve().parents[1] / "tests" / "c2pa_certs.py"
    spec = importlib.util.spec_from_file_location("c2pa_certs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["c2pa_certs"] = module  # dataclasses look their module up while the class is built
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def a1111_png(out: Path) -> None:
    info = PngInfo()
    info.add_text(
        "parameters",
        "a cup of coffee on a saucer, top view, studio light\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3141592653, Size: 384x256, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.7.0, "
        'Lora hashes: "detail: 1a2b, film: 3c4d"',
    )
    image = Image.fromarray(skimage.data.coffee()).resize((384, 256), Image.Resampling.LANCZOS)
    image.save(out / "a1111-parameters.png", pnginfo=info, optimize=True)


def comfyui_png(out: Path) -> None:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a rocket on the launch pad", "clip": ["4", 1]},
        },
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 156680208700286,
                "steps": 30,
                "cfg": 6.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
    }
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    image = Image.fromarray(skimage.data.rocket()).resize((256, 171), Image.Resampling.LANCZOS)
    image.save(out / "comfyui-workflow.png", pnginfo=info, optimize=True)


def sd_watermarked_png(out: Path) -> None:
    rgb = cv2.resize(skimage.data.astronaut(), (320, 320), interpolation=cv2.INTER_AREA)
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", [int(bit) for bit in format(SDXL_MESSAGE, "048b")])
    marked = encoder.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "dwtDct")
    Image.fromarray(cv2.cvtColor(marked, cv2.COLOR_BGR2RGB)).save(out / "sdxl-watermark.png", optimize=True)


def camera_jpeg(out: Path) -> None:
    exif = {
        "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"Canon PowerShot SX60 HS"},
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2023:06:14 17:21:05",
            piexif.ExifIFD.LensModel: b"3.8-247.0 mm",
            piexif.ExifIFD.PixelXDimension: 451,
            piexif.ExifIFD.PixelYDimension: 300,
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((52, 1), (22, 1), (0, 1)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((4, 1), (53, 1), (0, 1)),
        },
    }
    Image.fromarray(skimage.data.chelsea()).save(
        out / "camera-exif-resaved.jpg", quality=88, exif=piexif.dump(exif)
    )


def generative_fill_jpeg(out: Path) -> None:
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
        'xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#" '
        'xmp:CreatorTool="Adobe Photoshop 25.5 (Windows)"><xmpMM:History><rdf:Seq>'
        '<rdf:li stEvt:action="created" stEvt:softwareAgent="Adobe Photoshop 25.5 (Windows)"/>'
        '<rdf:li stEvt:action="saved" stEvt:softwareAgent="Adobe Photoshop 25.5 (Windows)" '
        'stEvt:changed="/" stEvt:parameters="Generative Fill"/>'
        "</rdf:Seq></xmpMM:History></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    image = Image.fromarray(skimage.data.coffee()).resize((360, 240), Image.Resampling.LANCZOS)
    image.save(out / "photoshop-generative-fill.jpg", quality=90, xmp=xmp.encode())


def c2pa_signed_jpeg(out: Path) -> None:
    certs = _load_test_certificates()
    material = certs.make_es256_signing_material(signer_common_name="pixelsleuth demo signer")
    definition = {
        "claim_generator_info": [{"name": "pixelsleuth-demo", "version": "0.1"}],
        "title": "c2pa-ai-generated.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "softwareAgent": "Demo Image Model 1.0",
                            "digitalSourceType": IPTC + "trainedAlgorithmicMedia",
                        }
                    ]
                },
            }
        ],
    }
    source = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).crop((60, 0, 360, 300)).save(source, "JPEG", quality=90)
    source.seek(0)
    signed = io.BytesIO()
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, material.chain_pem, material.key_pem, None)
    )
    c2pa.Builder(definition).sign(signer, "image/jpeg", source, signed)
    (out / "c2pa-ai-generated.jpg").write_bytes(signed.getvalue())


def plain_png(out: Path) -> None:
    rgb = np.asarray(Image.fromarray(skimage.data.rocket()).resize((256, 171), Image.Resampling.LANCZOS))
    Image.fromarray(rgb[:, ::-1]).save(out / "no-metadata.png", optimize=True)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "samples")
    out.mkdir(parents=True, exist_ok=True)
    makers = (a1111_png, comfyui_png, sd_watermarked_png, camera_jpeg, generative_fill_jpeg, c2pa_signed_jpeg)
    for make in (*makers, plain_png):
        make(out)
        print(f"wrote {make.__name__}")


if __name__ == "__main__":
    main()
