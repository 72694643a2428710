"""A tiny random-weight BERT sentence-transformer (built from its config class, the bundled
MiniLM's tokenizer) and a small index of Markdown documents made in code.

Random weights prove wiring and that the loss can fall, never retrieval quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TOPICS = {
    "birds": ("Sea Birds", ["Puffins nest in burrows dug into grassy cliff tops.",
                            "Gannets dive from thirty metres to catch mackerel.",
                            "Albatrosses glide for hours without flapping their wings.",
                            "Cormorants dry their wings in the sun after fishing."]),
    "engines": ("Diesel Engines", ["Compression heats the air until the fuel ignites.",
                                   "Injectors spray diesel at very high pressure.",
                                   "Glow plugs warm the cylinders on cold mornings.",
                                   "Turbochargers push more air into each cylinder."]),
    "bread": ("Baking Bread", ["Yeast ferments sugars and releases carbon dioxide gas.",
                               "Kneading develops the gluten network of the dough.",
                               "A hot oven sets the crust within minutes of baking.",
                               "Sourdough starters keep wild yeast alive for years."]),
    "tides": ("Ocean Tides", ["The moon pulls the oceans into two bulges of water.",
                              "Spring tides come when the sun and moon line up.",
                              "Neap tides are weaker during the quarter moons each month.",
                              "Tidal ranges exceed ten metres in the Bay of Fundy."]),
}


def write_docs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (title, sents) in TOPICS.items():
        body = []
        for i, s in enumerate(sents):
            body += [f"## Part {i + 1} about {title.lower()}", "",
                     f"{s} {' '.join(sents[(i + 1) % 4].split()[:6])} and more notes on "
                     f"{title.lower()} follow here in this paragraph.", ""]
        path = folder / f"{name}.md"
        path.write_text(f"# {title}\n\n" + "\n".join(body))
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def tiny_st_path(tmp_path_factory) -> str:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mmrag.encode.text import bundled_model_path

    raw = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(bundled_model_path())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=37,
                         max_position_embeddings=128)).save_pretrained(raw)
    tok.save_pretrained(raw)
    path = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(str(raw), device="cpu").save(str(path))  # mean pooling added
    return str(path)


@pytest.fixture
def docs(tmp_path) -> list[Path]:
    return write_docs(tmp_path / "docs")
