"""L1 and L2 penalties as gradient transformations.

Cost = Loss(w) + λ Σ|wᵢ|^q adds λ·∂(Σ|w|^q)/∂w to the gradient: λ·sign(w) for
q = 1 (L1, LASSO) and 2λw for q = 2 (L2, ridge). Put the regularizers first in
a chain, before the optimizer, so the optimizer sees the gradient of the
penalized cost:

    tx = optax.chain(optim.l2(1e-4), optim.adam(1e-3))

Note 2λw: the L2 penalty is λ‖w‖², not λ‖w‖²/2, so `l2(λ)` equals
`optax.add_decayed_weights(2λ)` placed before the optimizer (coupled weight
decay), not AdamW's decoupled decay.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

# A pytree of bools shaped like the params (or a prefix of them), or a function
# of the params returning one; True means "regularize this leaf".
Mask = Any | Callable[[optax.Params], Any]


def _leaf_name(path) -> str | None:
    """The name of a leaf in a params tree: the last dict key or attribute on its path."""
    if not path:
        return None
    last = path[-1]
    for attribute in ("key", "name"):
        if hasattr(last, attribute):
            return str(getattr(last, attribute))
    return None


def kernels_only(params: optax.Params) -> Any:
    """Mask of the conv and dense kernels: the leaves Flax names "kernel".

    Biases ("bias"), normalization scales and offsets ("scale", "bias"),
    embeddings and batch statistics are left out.
    """
    return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) == "kernel", params)


def _add_penalty_gradient(penalty_gradient: Callable[[jax.Array], jax.Array]) -> optax.GradientTransformation:
    """Add `penalty_gradient(w)` to the gradient of every leaf it is applied to."""

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("the L1/L2 regularizers need the params: call update(grads, state, params)")
        updates = jax.tree.map(
            lambda g, w: (g + penalty_gradient(w)).astype(g.dtype), updates, params
        )
        return updates, state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def l1(strength: float, mask: Mask | None = None) -> optax.GradientTransformation:
    r"""L1 (LASSO) penalty λΣ|w|: adds λ·sign(w) to the gradient.

    Args:
      strength: λ >= 0.
      mask: which leaves to regularize (a tree of bools or a function of the
        params); default `kernels_only`.
    """
    add = _add_penalty_gradient(lambda w: strength * jnp.sign(w))
    return optax.masked(add, kernels_only if mask is None else mask)


def l2(strength: float, mask: Mask | None = None) -> optax.GradientTransformation:
    r"""L2 (ridge) penalty λΣw²: adds 2λw to the gradient.

    Args:
      strength: λ >= 0.
      mask: which leaves to regularize (a tree of bools or a function of the
        params); default `kernels_only`.
    """
    add = _add_penalty_gradient(lambda w: 2 * strength * w)
    return optax.masked(add, kernels_only if mask is None else mask)


def penalty(l1_strength: float, l2_strength: float, mask: Mask | None = None) -> Callable[[optax.Params], jax.Array]:
    """The value λ₁Σ|w| + λ₂Σw² whose gradient `l1` and `l2` add, for logging it apart from the loss."""

    def value(params: optax.Params) -> jax.Array:
        chosen = (kernels_only if mask is None else mask)
        chosen = chosen(params) if callable(chosen) else chosen
        kernels = [w for w, keep in zip(jax.tree.leaves(params), jax.tree.leaves(chosen)) if keep]
        return sum(l1_strength * jnp.abs(w).sum() + l2_strength * jnp.square(w).sum() for w in kernels)

    return value
