import pytest

from mmrag import Settings
from mmrag.errors import UnknownBackendError
from mmrag.registry import Registry


def test_defaults_are_the_offline_profile_on_lancedb(monkeypatch):
    monkeypatch.delenv("MMRAG_CONFIG", raising=False)
    s = Settings.load()
    assert s.resolved_profile == "offline" and s.store.backend == "lancedb"
    assert Settings.load(encode={"vision_model": "some/clip"}).resolved_profile == "clip"


def test_env_toml_and_kwargs_priority(tmp_path, monkeypatch):
    toml = tmp_path / "mmrag.toml"
    toml.write_text('profile = "clip"\n[search]\nfusion = "weighted"\nalpha = 0.7\n'
                    '[encode]\nvision_model = "local/ckpt"\nthreads = 3\n')
    s = Settings.load(toml, search__alpha=0.2)
    assert s.profile == "clip" and s.search.fusion == "weighted"
    assert s.search.alpha == 0.2 and s.encode.threads == 3  # kwargs beat the file
    monkeypatch.setenv("MMRAG_SEARCH__RRF_K", "17")
    monkeypatch.setenv("MMRAG_CONFIG", str(toml))
    env = Settings()
    assert env.search.rrf_k == 17 and env.search.alpha == 0.7 and env.profile == "clip"


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError):
        Settings.load(search={"alpha": 2.0})
    with pytest.raises(ValueError):
        Settings.load(search={"fusion": "magic"})


def test_registry_names_dotted_paths_and_unknown_names():
    reg: Registry[object] = Registry("thing")

    @reg.register("mine")
    class Mine:
        pass

    assert reg.create("mine").__class__ is Mine
    assert reg.get("collections.OrderedDict").__name__ == "OrderedDict"
    with pytest.raises(UnknownBackendError, match="mine"):
        reg.get("nope")
