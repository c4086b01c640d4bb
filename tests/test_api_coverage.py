"""tools/api_coverage.py on a small folder of files written here: aliases resolved, counts exact."""
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "api_coverage.py")

FILES = {
    "a.py": '''
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        from torch.optim import Adam


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)

            def forward(self, x):
                return F.relu(self.fc(x)).view(-1)


        net = Net()
        opt = Adam(net.parameters(), lr=1e-3)
        y = torch.zeros(3).not_a_tensor_method_xyz()
        z = torch.no_such_function_abc(1)
        w = x.unsqueeze(0).no_such_function_abc
    ''',
    "sub/b.py": '''
        from torch import nn
        from torch.nn import functional as G
        import torch.utils.data
        t = torch.utils.data.DataLoader
        u = G.no_such_function_abc(nn.ReLU())
        names = "a b".split()   # a str method: not counted as a tensor method
        v = u.sum(dim=0).mean()
    ''',
    "broken.py": "def (:\n",
    "notes.txt": "import torch\ntorch.nothing_here\n",
}


def test_api_coverage_counts(tmp_path):
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    out = subprocess.run([sys.executable, TOOL, str(tmp_path), "--json"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["files"] == 2 and r["unparsable"] == 1
    missing = dict(r["missing"])
    # `torch.no_such_function_abc` (a.py) and `G.no_such_function_abc` resolve to two names
    assert missing == {"torch.no_such_function_abc": 1,
                       "torch.nn.functional.no_such_function_abc": 1}
    # references: torch.nn (import), torch.nn.functional (import), torch.optim.Adam (import
    # + use), nn.Module, nn.Linear, F.relu, torch.zeros, torch.no_such_function_abc;
    # b.py: torch.nn, torch.nn.functional (from-imports), torch.utils.data (import),
    # torch.utils.data.DataLoader, G.no_such_function_abc, nn.ReLU
    assert r["references"] == 15 and r["references_present"] == 13
    # method calls: .view, .unsqueeze, .sum, .mean (.split is a str method: skipped;
    # .parameters is not a tensor method; .not_a_tensor_method_xyz is unknown to torch)
    assert r["method_calls"] == 4 and r["method_calls_present"] == 4
    assert abs(r["share"] - 17 / 19) < 1e-12


def test_api_coverage_text_and_errors(tmp_path):
    (tmp_path / "m.py").write_text("import torch\nx = torch.ones(2).t()\ny = torch.nope\n")
    out = subprocess.run([sys.executable, TOOL, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "ember has 66.67% of the uses" in out.stdout
    assert out.stdout.strip().splitlines()[-1].split() == ["1", "torch.nope"]
    ex = subprocess.run([sys.executable, TOOL, str(tmp_path), "--exclude", "torch.nope",
                         "--exclude", "Tensor.t", "--json"], capture_output=True, text=True,
                        timeout=120, cwd=ROOT)
    r = json.loads(ex.stdout)
    assert r["references"] == 1 and r["method_calls"] == 0 and r["share"] == 1.0
    bad = subprocess.run([sys.executable, TOOL, str(tmp_path / "nope")], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "not a folder" in bad.stderr
