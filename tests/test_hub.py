"""ember.hub: hubconf.py from a local folder, the cache directory, downloads on request only
(file:// and a server on 127.0.0.1; nothing leaves the machine)."""
import hashlib
import http.server
import os
import textwrap
import threading

import pytest
import torch

import ember
import ember.hub as hub

HUBCONF = textwrap.dedent('''
    dependencies = ["numpy"]
    import torch


    def tiny(out_features=2, bias=True):
        """A Linear(3, out_features)."""
        return torch.nn.Linear(3, out_features, bias=bias)


    def _helper():
        return None

    CONSTANT = 3
''')


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "hubconf.py").write_text(HUBCONF.replace("import torch", "import ember as torch"))
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_hub_dir(monkeypatch):
    monkeypatch.setattr(hub, "_hub_dir", None)


def test_local_load_list_help(repo):
    m = hub.load(str(repo), "tiny", 4, source="local", bias=False)
    assert isinstance(m, ember.nn.Linear) and m.out_features == 4 and m.bias is None
    assert hub.load(str(repo), "tiny", source="local").out_features == 2
    assert hub.list(str(repo)) == ["tiny"]
    assert hub.help(str(repo), "tiny") == "A Linear(3, out_features)."
    # the same hubconf works under real torch: the API agrees
    (repo / "hubconf.py").write_text(HUBCONF)
    assert torch.hub.load(str(repo), "tiny", 4, source="local", bias=False).out_features == 4


def test_local_errors(repo, tmp_path_factory):
    with pytest.raises(RuntimeError, match="Cannot find callable nope in hubconf"):
        hub.load(str(repo), "nope", source="local")
    with pytest.raises(RuntimeError, match="Cannot find callable CONSTANT in hubconf"):
        hub.load(str(repo), "CONSTANT", source="local")
    with pytest.raises(ValueError, match="Invalid input: model should be a string"):
        hub.load(str(repo), 3, source="local")
    with pytest.raises(ValueError, match='Unknown source: "ftp"'):
        hub.load(str(repo), "tiny", source="ftp")
    with pytest.raises(RuntimeError, match="ember does not implement torch.hub downloads"):
        hub.load("owner/not-a-folder", "tiny")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(FileNotFoundError):
        hub.load(str(empty), "tiny", source="local")
    (empty / "hubconf.py").write_text("dependencies = ['no_such_package_xyz']\n")
    with pytest.raises(RuntimeError, match="Missing dependencies: no_such_package_xyz"):
        hub.load(str(empty), "tiny", source="local")


def test_module_names_as_torch():
    for name in ("HASH_REGEX", "urlparse", "get_dir", "set_dir", "list", "help", "load",
                 "download_url_to_file", "load_state_dict_from_url", "_get_torch_home"):
        assert hasattr(torch.hub, name) and hasattr(hub, name), name
    assert hub.HASH_REGEX.pattern == torch.hub.HASH_REGEX.pattern


def test_get_dir_set_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert hub.get_dir() == str(tmp_path / "th" / "hub")
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.get_dir() == str(tmp_path / "xdg" / "torch" / "hub")
    hub.set_dir("~/somewhere")
    assert hub.get_dir() == os.path.expanduser("~/somewhere")
    ember.hub.set_dir(str(tmp_path / "mine"))
    assert hub.get_dir() == str(tmp_path / "mine")


@pytest.fixture
def weights(tmp_path):
    ember.manual_seed(0)
    sd = ember.nn.Linear(3, 2).state_dict()
    src = tmp_path / "src" / "w.pt"
    src.parent.mkdir()
    ember.save(sd, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    named = src.with_name(f"lin-{digest[:8]}.pt")
    named.write_bytes(src.read_bytes())
    return sd, src, named, digest


def test_load_state_dict_from_file_url(weights, tmp_path, monkeypatch):
    sd, src, named, _ = weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    got = hub.load_state_dict_from_url(src.as_uri(), progress=False, weights_only=True)
    cached = tmp_path / "home" / "hub" / "checkpoints" / "w.pt"
    assert cached.exists() and list(got) == list(sd)
    ember.testing.assert_close(got["weight"], sd["weight"])
    os.remove(src)  # cached now: no second download
    again = hub.load_state_dict_from_url(src.as_uri(), progress=False, weights_only=True)
    ember.testing.assert_close(again["bias"], sd["bias"])
    # check_hash reads the sha256 prefix from the file name
    got = hub.load_state_dict_from_url(named.as_uri(), model_dir=str(tmp_path / "md"),
                                       check_hash=True, file_name=None, progress=False)
    assert (tmp_path / "md" / named.name).exists() and list(got) == list(sd)
    got = hub.load_state_dict_from_url(named.as_uri(), model_dir=str(tmp_path / "md"),
                                       file_name="renamed.pt", progress=False)
    assert (tmp_path / "md" / "renamed.pt").exists()


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.hits.append(self.path)
        super().do_GET()


@pytest.fixture
def server(weights):
    folder = str(weights[1].parent)

    def handler(*args, **kwargs):
        return _Handler(*args, directory=folder, **kwargs)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.hits = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_download_cache_and_hash(server, weights, tmp_path):
    sd, src, named, digest = weights
    url = f"{server}/{named.name}"
    md = str(tmp_path / "cache")
    got = hub.load_state_dict_from_url(url, model_dir=md, check_hash=True, progress=False)
    ember.testing.assert_close(got["weight"], sd["weight"])
    hub.load_state_dict_from_url(url, model_dir=md, check_hash=True, progress=False)
    assert _Handler.hits == [f"/{named.name}"]  # downloaded once, then read from the cache
    # torch reads the same cached file
    t = torch.hub.load_state_dict_from_url(url, model_dir=md, progress=False)
    assert torch.equal(t["weight"], torch.tensor(sd["weight"].numpy()))
    dst = tmp_path / "direct.pt"
    hub.download_url_to_file(f"{server}/w.pt", str(dst), hash_prefix=digest[:6], progress=False)
    assert dst.read_bytes() == src.read_bytes()
    with pytest.raises(RuntimeError, match=r'invalid hash value \(expected "0000", got'):
        hub.download_url_to_file(f"{server}/w.pt", str(tmp_path / "bad.pt"),
                                 hash_prefix="0000", progress=False)
    assert not (tmp_path / "bad.pt").exists()
    assert [f for f in os.listdir(tmp_path) if f.endswith(".partial")] == []
