"""``Graph.owning_module`` is held weakly: a dropped ``GraphModule`` (and the tensors only it
holds) is freed at once, without the garbage collector, and a graph that outlives its module
still works and answers None, as in a graph that never had one."""
from __future__ import annotations

import copy
import gc
import weakref

import pytest

import ember
from ember.fx import Graph, GraphModule, symbolic_trace


class Shift(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = ember.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x).relu() + 1.0


@pytest.fixture
def no_gc():
    """The collector off: what is freed here is freed by reference counts alone."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if was:
        gc.enable()


def _graph_reading(name):
    g = Graph()
    x = g.placeholder("x")
    c = g.get_attr(name)
    g.output(g.call_function(ember.add, (x, c)))
    return g


def test_owning_module_is_the_graph_module():
    gm = symbolic_trace(Shift())
    assert gm.graph.owning_module is gm
    assert Graph().owning_module is None
    gm2 = copy.deepcopy(gm)
    assert gm2.graph.owning_module is gm2 and gm.graph.owning_module is gm


def test_a_dropped_graph_module_and_its_constants_are_freed_without_gc(no_gc):
    const = ember.randn(1000)
    gm = GraphModule({"const": const}, _graph_reading("const"))
    x = ember.ones(1000)
    assert ember.equal(gm(x), x + const)
    refs = weakref.ref(gm), weakref.ref(const)
    del gm, const
    # (the graph's own nodes link to each other, as torch.fx's do: it waits for the collector,
    # but holds no tensor of the module's)
    assert [r() is None for r in refs] == [True, True]


def test_a_dropped_traced_module_is_freed_without_gc(no_gc):
    gm = symbolic_trace(Shift())
    ref = weakref.ref(gm)
    del gm
    assert ref() is None


def test_a_graph_outliving_its_module_still_works(no_gc):
    m = Shift()
    g = symbolic_trace(m).graph
    assert g.owning_module is None
    assert "relu" in g.python_code(root_module="self").src
    gm = GraphModule(m, g)  # owned again
    assert g.owning_module is gm
    x = ember.randn(2, 4)
    assert ember.allclose(gm(x), m(x))
