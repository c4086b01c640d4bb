"""``ember.func``: PyTorch's composable function transforms (``torch.func``) on ember autograd.

Design note. PyTorch implements these as interpreter levels that wrap tensors (batched and
gradient-tracking wrappers). ember has no such levels; every transform is an ordinary
Python function over the existing reverse-mode engine:

- ``vmap`` is a loop: slice each mapped input with ``select(in_dim, i)``, call ``func``
  once per index, and ``stack`` each output along its ``out_dim``. Slicing and stacking are
  differentiable ops, so a ``vmap`` inside or outside ``grad`` differentiates as it should;
  it costs one call per batch element instead of one batched call.
- ``grad``/``vjp``/``jacrev`` call ``func`` on fresh leaves and run ``autograd.grad``. The
  leaves are views of the arguments (``create_graph=True``) when the result may be
  differentiated again: an argument requires grad, or the call runs inside another
  transform (a depth counter in ``_eager_transforms``). Otherwise results are plain tensors.
- ``jvp``/``jacfwd`` use the double-vjp trick (no forward-mode AD): with a dummy cotangent
  ``u`` that requires grad, ``uᵀJ`` is linear in ``u``, so its vjp along ``v`` is ``J v``.
- ``functional_call`` swaps tensors into a module's ``_parameters``/``_buffers`` for one
  call and restores them in ``finally``; ``stack_module_state`` stacks same-named state.

Life of ``vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)``: vmap checks the in_dims
against the argument tree, then for each ``i`` calls ``grad(loss)(params, x[i], y[i])``,
which makes the ``params`` dict's tensors leaves, runs ``loss``, takes ``autograd.grad``,
and returns a dict of gradients; vmap stacks the B dicts into one dict of ``(B, ...)``.
"""
from ._vmap import vmap
from ._eager_transforms import grad, grad_and_value, vjp, jvp, jacrev, jacfwd, hessian
from ._functional_call import functional_call, stack_module_state

__all__ = ["vmap", "grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian",
           "functional_call", "stack_module_state"]
