"""Synthetic data and store factories shared by the store contract tests."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np
import pytest

SPACES = {"text": 16, "image": 32}
N_ROWS = 200
N_DOCS = 20
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")
RARE_ROW = 137
RARE_WORD = "xylophone"

HAVE_MILVUS = (importlib.util.find_spec("pymilvus") is not None
               and importlib.util.find_spec("milvus_lite") is not None)

HAVE_MOTO = (importlib.util.find_spec("moto") is not None
             and importlib.util.find_spec("flask") is not None)

BACKENDS = [
    pytest.param("lancedb", id="lancedb"),
    # a Milvus server process (MMRAG_MILVUS_URI, or the `milvus` package's embedded one)
    pytest.param("milvus-server", id="milvus-server", marks=[
        pytest.mark.milvus,
        pytest.mark.skipif(not HAVE_MILVUS, reason="pymilvus/milvus-lite not installed")]),
    # the same LanceDB store on s3:// (a moto S3 server on loopback)
    pytest.param("lancedb-s3", id="lancedb-s3", marks=[
        pytest.mark.skipif(not HAVE_MOTO, reason="moto[server] not installed")]),
    pytest.param("milvus", id="milvus", marks=[
        pytest.mark.milvus,
        pytest.mark.skipif(not HAVE_MILVUS, reason="pymilvus/milvus-lite not installed")]),
]


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class Data:
    items: list
    vectors: dict[str, np.ndarray]
    present: dict[str, np.ndarray] = field(default_factory=dict)

    def by_id(self, item_id: str):
        return next(it for it in self.items if it.id == item_id)


def make_data(seed: int = 7) -> Data:
    """200 items over 20 docs and 3 modalities; text rows have no image vector and
    every 5th row no text vector, so "absent" is exercised in both spaces."""
    from mmrag.types import Item

    rng = np.random.default_rng(seed)
    items, modalities = [], ("text", "image", "page")
    for i in range(N_ROWS):
        doc = i % N_DOCS
        modality = modalities[i % 3]
        ext = {"text": "txt", "image": "png", "page": "pdf"}[modality]
        words = " ".join(rng.choice(WORDS, size=8))
        text = f"alpha {words}" + (f" {RARE_WORD} rare" if i == RARE_ROW else "")
        items.append(Item(
            id=f"doc{doc}-{i}", doc_id=f"doc{doc}", modality=modality,
            source=f"/data/{'reports' if doc % 2 else 'photos'}/file{doc}.{ext}",
            name=f"file{doc}.{ext}", text=text, page=1 + i % 4, chunk_start=i,
            chunk_end=i + 10, section=f"s{i % 5}", created=1000.0 + i,
            bbox=(0.0, 0.0, 1.0, 0.5) if modality == "image" else None,
            mime=f"type/{ext}", size=100 + i, media=f"hash{i}" if modality != "text" else "",
            metadata={"lang": "en" if i % 2 else "de", "n": i % 3}))
    vectors = {s: unit(rng, N_ROWS, d) for s, d in SPACES.items()}
    present = {
        "image": np.array([it.modality != "text" for it in items]),
        "text": np.array([i % 5 != 0 for i in range(N_ROWS)]),
    }
    for space, mask in present.items():
        vectors[space][~mask] = np.nan
    return Data(items, vectors, present)


@pytest.fixture(scope="session")
def data() -> Data:
    return make_data()


S3_BUCKET = "mmrag-test"
MILVUS_MIN = (2, 5)  # BM25 functions and sparse vectors, which the backend's schema uses


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """URI of a real Milvus server: ``MMRAG_MILVUS_URI`` if set, else the embedded server
    of the PyPI ``milvus`` package started here; skips, saying why, when neither runs a
    version the backend can use."""
    import os

    uri = os.environ.get("MMRAG_MILVUS_URI", "")
    if uri:
        yield uri
        return
    if importlib.util.find_spec("milvus") is None:
        pytest.skip("no Milvus server: set MMRAG_MILVUS_URI (the PyPI `milvus` package, "
                    "the only embedded server, is not installed)")
    import socket

    from milvus import default_server
    from pymilvus import MilvusClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    default_server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    default_server.listen_port = port
    default_server.start()
    try:
        uri = f"http://127.0.0.1:{port}"
        version = MilvusClient(uri=uri).get_server_version()
        numbers = tuple(int(v) for v in version.lstrip("v").split("-")[0].split(".")[:2])
        if numbers < MILVUS_MIN:
            pytest.skip(f"the `milvus` package's embedded server is {version}; the Milvus "
                        f"backend needs >= {'.'.join(map(str, MILVUS_MIN))} (BM25 function, "
                        f"SPARSE_FLOAT_VECTOR: {version} refuses 'create index on 104 "
                        f"field'); set MMRAG_MILVUS_URI to a newer server")
        yield uri
    finally:
        default_server.stop()


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on loopback with one bucket; yields LanceDB ``storage_options``
    (the endpoint and its dummy keys). The same keys in ``AWS_*`` names reach s3fs and
    child processes through :func:`s3_env`."""
    if not HAVE_MOTO:
        pytest.skip("moto[server] not installed")
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 **keys).create_bucket(Bucket=S3_BUCKET)
    yield {"endpoint": endpoint, "allow_http": "true", "region": "us-east-1", **keys}
    server.stop()


def s3_env(options: dict) -> dict[str, str]:
    """The ``AWS_*`` environment equivalent of :func:`s3_server`'s storage options."""
    return {"AWS_ACCESS_KEY_ID": options["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": options["aws_secret_access_key"],
            "AWS_ENDPOINT_URL": options["endpoint"], "AWS_ENDPOINT": options["endpoint"],
            "AWS_ALLOW_HTTP": "true", "AWS_REGION": options["region"],
            "AWS_DEFAULT_REGION": options["region"], "AWS_EC2_METADATA_DISABLED": "true"}


def s3_uri(name: str) -> str:
    """A fresh prefix in the test bucket (tests share one server)."""
    import uuid

    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}/{name}"


@pytest.fixture
def open_store(tmp_path, request):
    """Factory ``open_store(backend, spaces=SPACES, **options)`` on one tmp location
    (one S3 prefix for ``lancedb-s3``); stores are closed at teardown."""
    import uuid

    from mmrag.store import stores

    opened = []
    remote = s3_uri("lance") if "lancedb-s3" in request.node.name else ""
    collection = "items"

    def factory(backend: str, spaces=None, **options):
        nonlocal collection
        uri = str(tmp_path / ("milvus.db" if backend == "milvus" else "lance"))
        if backend == "lancedb-s3":
            backend, uri = "lancedb", remote
            options.setdefault("storage_options", request.getfixturevalue("s3_server"))
        elif backend == "milvus-server":  # one server: a collection per test
            backend, uri = "milvus", request.getfixturevalue("milvus_server")
            if collection == "items":
                collection = f"t{uuid.uuid4().hex[:12]}"
        store = stores.create(backend, uri, collection, spaces=dict(spaces or SPACES),
                              **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    if collection != "items":
        from pymilvus import MilvusClient

        MilvusClient(uri=request.getfixturevalue("milvus_server")).drop_collection(collection)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def filled(open_store, data, backend):
    store = open_store(backend)
    store.add(data.items, data.vectors)
    return store
