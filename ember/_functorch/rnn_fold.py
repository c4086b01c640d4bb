"""A graph pass: an embedding read only by a fused LSTM layer becomes one node.

NOTE [ Embedding into LSTM ]
What: ``embedding(E, idx)`` (flattened to ``(N, I)`` by a view, or first transposed to
time-major, as a ``batch_first`` LSTM does) whose rows only the input of a fused LSTM layer
(``fused_rnn_layer``, no projection) reads is replaced, with that layer, by
``fused_rnn_emb_layer(E, idx, h0, c0, W_ih, W_hh, b_ih, b_hh, ...)`` (``ops/rnn.py``,
``_FusedEmbLstm``).
Why: ``x W_ih^T + b`` for ``x = E[idx]`` is ``(E W_ih^T + b)[idx]``, so the input's gate
pre-activations are a table of ``V`` rows computed once a call and looked up, instead of
``N`` rows of GEMM; the layer's step GEMMs then read the states only (``K = H`` instead of
``H + I + 1``) and its backward needs no input gradient: the table's gradient is the gate
gradients summed per index (``V`` rows), from which ``E``'s, ``W_ih``'s and the biases'
follow by small GEMMs.  ``lstm_lm_step`` (vocab 65, embedding 64, hidden 128, 64 x 32
tokens): the layer's forward + backward ~19.3 -> ~15.4 ms, the compiled step from 1.04-1.12
to 0.94-0.95 of torch eager's (thread time, one thread, loaded machine).
When: the table has at most ``MAX_ROWS`` rows (character and byte vocabularies; its products
cost about ``V / N`` of those it replaces, so a word vocabulary is left alone).  The bound is
on ``V`` alone, not on ``V / N``, so that whether a graph folds never depends on the batch or
the sequence length: ``dynamic`` shapes line two captures of one program up op by op (NOTE
[ Dynamic compiled graphs ]).  The embedding must be plain (no ``padding_idx``, no
``scale_grad_by_freq``, not sparse; ``max_norm``'s renormalisation is a separate write before
it and stays), float32 or float64.  The numbers are the pair's to rounding: the same
products, summed in another order (float64 agrees to ~1e-14).
Where: ``passes.optimize_graph`` runs it first, on the captured graph, so the compiled region
and its eager fallback both run the folded node.
"""
from __future__ import annotations

from ..autograd.modes import Op, op_for
from .._tensor import Tensor

__all__ = ["fold_embedding_lstm"]


MAX_ROWS = 256  # the largest table folded (NOTE above)
_VIEWS = ("view", "unsafe_view", "reshape")  # row-major flattenings: the rows keep their order


def _name(n) -> str:
    t = n.target if n.op == "call_function" else None
    return t.__name__ if isinstance(t, Op) else ""


def _val(n):
    return n.meta.get("val") if hasattr(n, "meta") else None


def fold_embedding_lstm(graph) -> int:
    """Replace each embedding + fused LSTM layer pair of ``graph`` (NOTE above); returns how
    many were replaced."""
    from ..ops.rnn import _FusedEmbLstm
    done = 0
    for n in list(graph.nodes):
        if _name(n) != "fused_rnn_layer" or n.kwargs or len(n.args) != 12:
            continue
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs, y_shape = n.args
        if mode != "LSTM" or w_hr is not None or not hasattr(x, "op") or len(x.users) != 1:
            continue
        chain = []  # the view and transpose between the embedding and the layer, last first
        emb = x
        while _name(emb) in _VIEWS or _name(emb) == "transpose" and \
                tuple(emb.args[1:]) == ((1, 0, 2),) and not any(_name(c) == "transpose"
                                                                for c in chain):
            chain.append(emb)
            emb = emb.args[0]
            if not hasattr(emb, "op") or len(emb.users) != 1:
                break
        if _name(emb) != "embedding" or emb.kwargs or len(emb.args) != 5 or \
                len(emb.users) != 1:
            continue
        w, idx, pad, by_freq, sparse = emb.args
        wv, iv, xv = _val(w), _val(idx), _val(x)
        if pad >= 0 or by_freq or sparse or not all(isinstance(v, Tensor) for v in (wv, iv, xv)):
            continue
        N = sum(bs)
        wa = wv._data
        idx_t = any(_name(c) == "transpose" for c in chain)  # of the embedding's own (B, T, I)
        wiv = _val(w_ih)
        if wa.ndim != 2 or wa.dtype.kind != "f" or wa.dtype.itemsize < 4 or iv._data.size != N \
                or not isinstance(wiv, Tensor) or wiv._data.dtype != wa.dtype \
                or xv._data.shape != (N, wa.shape[1]) or wa.shape[0] > MAX_ROWS or \
                idx_t and (_name(chain[-1]) != "transpose" or iv._data.ndim != 2):
            continue
        with graph.inserting_before(n):
            new = graph.call_function(op_for(_FusedEmbLstm), (w, idx, h0, c0, w_ih, w_hh, b_ih,
                                                              b_hh, reverse, bs, y_shape, idx_t))
        new.meta = dict(n.meta)
        n.replace_all_uses_with(new)
        graph.erase_node(n)
        for c in chain:
            graph.erase_node(c)
        graph.erase_node(emb)
        done += 1
    return done
