"""The `clip` profile end to end with tiny random-weight CLIP/SigLIP checkpoints.

These prove wiring only (a user's checkpoint takes the same loading path), never quality:
random weights rank arbitrarily, so assertions are about shapes, spaces and exact matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrag import Index
from tests.factories import make_png, make_text_pdf


@pytest.fixture()
def pictures(tmp_path: Path) -> Path:
    docs = tmp_path / "pics"
    docs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        arr = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(arr).save(docs / f"noise{i}.png")
    (docs / "red_square.png").write_bytes(make_png("red", (40, 40)))
    (docs / "slides.pdf").write_bytes(make_text_pdf(["first slide", "second slide"]))
    (docs / "notes.md").write_text("# Notes\n\nplain text about a red car\n")
    return docs


@pytest.mark.parametrize("model", ["tiny_clip_path", "tiny_siglip_path"])
def test_clip_profile_wiring_text_to_image_and_image_to_image(tmp_path, pictures, model,
                                                              request):
    ckpt = request.getfixturevalue(model)
    with Index(tmp_path / "idx", profile="clip", encode={"vision_model": str(ckpt),
                                                         "text_encoder": "hashing"}) as index:
        assert set(index.encoders) == {"text", "clip"}
        report = index.add(pictures)
        assert len(report.added) == 7, report.failed
        # image → image: a stored image queried by itself is its own nearest neighbour
        hits = index.search(pictures / "noise2.png", k=3, group_by="item")
        assert hits[0].item.name == "noise2.png"
        assert set(hits[0].scores) == {"clip:image"}
        assert hits[0].scores["clip:image"] == pytest.approx(1.0, abs=1e-4)
        # text → image goes through the CLIP text tower into the image space
        mixed = index.search("a red car", k=10, group_by="item", mode="dense")
        spaces = {name for h in mixed for name in h.scores}
        assert "clip:text" in spaces and "text:text" in spaces
        clip_only = [h for h in mixed if set(h.scores) == {"clip:text"}]
        assert all(h.modality in ("image", "page") for h in clip_only)
        # PDF pages are in the image space too (rendered page images)
        pages = index.search(pictures / "noise0.png", k=20, group_by="item",
                             filters={"modality": "page"})
        assert {h.item.name for h in pages} == {"slides.pdf"} and len(pages) == 2


def test_text_plus_image_query_early_and_late_fusion_wiring(tmp_path, pictures, tiny_clip_path):
    base = {"vision_model": str(tiny_clip_path), "text_encoder": "hashing"}
    with Index(tmp_path / "idx", profile="clip", encode=base) as index:
        index.add(pictures)
        late = index.search("noise", image=pictures / "noise1.png", k=5, group_by="item")
        assert {"clip:text", "clip:image"} <= {n for h in late for n in h.scores}
    with Index(tmp_path / "idx", search={"query_fusion": "early"}) as index:
        assert index.profile == "clip"  # reopened from the manifest
        early = index.search("noise", image=pictures / "noise1.png", k=5, group_by="item")
        names = {n for h in early for n in h.scores}
        assert "clip:text+image" in names and "clip:image" not in names
        with Image.open(pictures / "noise1.png") as img:  # PIL image and bytes work too
            assert index.search(img.copy(), k=1, group_by="item")[0].item.name == "noise1.png"
        data = (pictures / "noise3.png").read_bytes()
        assert index.search(data, k=1, group_by="item")[0].item.name == "noise3.png"


@pytest.mark.parametrize("model", ["tiny_colpali_path", "tiny_colqwen2_path"])
def test_colpali_profile_wiring_maxsim_over_pooled_candidates(tmp_path, pictures, model,
                                                              request):
    ckpt = request.getfixturevalue(model)
    settings = {"vision_model": str(ckpt), "text_encoder": "hashing", "batch_size": 2}
    with Index(tmp_path / "idx", profile="colpali", encode=settings) as index:
        report = index.add(pictures)
        assert len(report.added) == 7, report.failed
        mv = index.multivec["colpali"]
        # every image and page item keeps its token matrix; text chunks do not
        image_like = [i for r in index.documents() for i in r.item_ids if ":t" not in i]
        assert sorted(mv.ids()) == sorted(image_like)
        hits = index.search("red car", k=10, group_by="item", mode="dense")
        late = [h for h in hits if "colpali:maxsim" in h.scores]
        assert late and all(h.modality in ("image", "page") for h in late)
        assert index.search(pictures / "noise2.png", k=1, group_by="item")[0].item.name \
            == "noise2.png"
        index.delete(pictures / "slides.pdf")
        assert len(mv.ids()) == 5  # its two page matrices are gone
    with Index(tmp_path / "idx") as again:  # profile, model and token store come back
        assert again.profile == "colpali"
        assert len(again.multivec["colpali"].ids()) == 5


def test_caption_model_wiring_adds_captions_to_images_and_figures(tmp_path, pictures,
                                                                  tiny_blip_path):
    settings = {"text_encoder": "hashing", "caption_model": str(tiny_blip_path),
                "caption_max_new_tokens": 5}
    with Index(tmp_path / "idx", encode=settings) as index:
        assert not index.add(pictures).failed
        images = index.search("noise", k=10, group_by="item", filters={"modality": "image"})
        assert images
        for hit in images:
            caption = hit.item.metadata["generated_caption"]
            assert hit.item.metadata["caption_model"] == str(tiny_blip_path)
            assert caption and caption in hit.item.text.splitlines()
        # captions are generated words: they are searchable like any other text
        word = images[0].item.metadata["generated_caption"].split()[0]
        assert index.search(word, k=10, mode="bm25", group_by="item")


def test_image_query_finds_passages_through_clip_text_vectors_wiring(tmp_path, pictures,
                                                                     tiny_clip_path):
    """encode.clip_text_items: text chunks get CLIP text vectors, so an image query can
    return a passage; a text query's CLIP list still looks at pictures and pages only."""
    base = {"vision_model": str(tiny_clip_path), "text_encoder": "hashing"}
    with Index(tmp_path / "idx", profile="clip", encode=base) as index:
        assert not index.add(pictures).failed
        passages = index.search(pictures / "red_square.png", k=10, group_by="item",
                                filters={"modality": "text"})
        assert passages and {h.modality for h in passages} == {"text"}
        assert all(set(h.scores) == {"clip:image"} for h in passages)
        assert "notes.md" in {h.item.name for h in passages}
        # a text query restricted to text items gets no CLIP list at all
        only_text = index.search("red car", k=10, group_by="item", mode="dense",
                                 filters={"modality": "text"})
        assert only_text and all("clip:text" not in h.scores for h in only_text)
    off = {**base, "clip_text_items": False}
    with Index(tmp_path / "idx2", profile="clip", encode=off) as index:
        index.add(pictures)
        assert not index.search(pictures / "red_square.png", k=10, group_by="item",
                                filters={"modality": "text"})
