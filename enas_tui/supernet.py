"""The ENAS shared model: one weight-sharing recurrent supernet for every cell of N nodes.

Node 0 reads the token embedding x and the previous state h; node j >= 1 reads its parent i:

    c0 = sigmoid(x W_xc + h W_hc);  v0 = c0 * f0(x W_xh + h W_hh) + (1 - c0) * h
    cj = sigmoid(v_i W^c_ij);       vj = cj * fj(v_i W^h_ij)    + (1 - cj) * v_i

The output (and the next state) is the mean of the leaf nodes, each row of it rescaled at every step
to norm at most ``model.max_hidden_norm`` (h <- h c / max(|h|, c)): without that an identity/ReLU
chain grows its state by orders of magnitude per step. Every (i, j) edge owns one weight pair,
shared by all architectures that use it, stored fused as ``edges[j(j-1)/2 + i]`` of shape (H, 2H):
columns :H give c, H: give the pre-activation.

Speed. At small hidden sizes a step of the cell is a few microseconds of arithmetic per op, so the
cost is the number of ops (and their Python and autograd overhead); at large ones it is the decoder
and the edge matmuls. So:

* the nodes are laid out level by level (all parents of a depth-d+1 node sit at depth d) and, inside
  a level, grouped by activation: a time step is one batched matmul and a few elementwise ops per
  level instead of per node (``CellPlan``, built once per architecture and cached);
* the recurrence is one autograd Function with a hand-written backward through time (``_Cell``): the
  forward builds no graph and writes into preallocated buffers, the backward takes four ops per
  level and step, and the weight gradients leave the time loop entirely (one batched matmul over all
  T*B rows per edge at the end, which is what makes large hidden sizes efficient);
* the per-step clip is four small ops in the forward loop (a norm, the ratio |h| / c floored at 1,
  a divide); the backward reads the norms the forward recorded and spends extra ops only on the
  steps where a row was clipped (``_clip_backward_terms``), which a cell in training rarely is;
* the time loops run their small elementwise ops on one CPU thread (``_loop_threads``);
* the decoder and the loss are fused (``linear_cross_entropy``): chunked, the softmax gradient is
  formed in place while the chunk is in cache, and the (T*B, V) logits are never kept.

Memory. A search meets a new architecture at nearly every step, so nothing the model keeps may
grow with the architectures it has seen, nor the shapes it allocates vary with them:

* the cell's large buffers (node values, gates, activations, their gradients) and the loops'
  scratch live in the model's ``Workspace``: flat allocations viewed in each call's shapes, so every
  architecture, and the evaluation batches, run in the same memory and the time loops allocate
  nothing;
* plans are cached only for the calls in a row that reuse one (``PLAN_CACHE``). A cache of 4096
  (a dozen small, long-lived tensors per plan) doubled a random run's peak resident memory in 10
  epochs (402-415 MiB to 645-887), far more than the plans hold (about 6 MiB per epoch, seen with
  glibc's mmap threshold pinned): scattered among the per-step allocations, they fragment the heap.
  With 64 plans the peak stays within 5%.

``benchmarks/supernet.py`` measures the speed against a plain per-node implementation of the same
cell, ``benchmarks/memory.py`` the peak memory of each epoch of a search.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .search_space import ACTIVATIONS, Architecture, ArchitectureError

# Uniform(-0.04, 0.04) as in ENAS-style weight-sharing RNNs: the gates start near 0.5 and each node
# near a leaky copy of its parent, so gradients pass through 35 steps x up to 12 nodes; pre-activations
# stay O(1) even at hidden 1000 (std 0.04 * sqrt(H / 3) = 0.7 for unit inputs): nothing saturates.
INIT_RANGE = 0.04
LOSS_CHUNK = 256  # rows of the fused decoder + loss: 256 x 10k logits (10 MB) stay in the L3 cache
PARALLEL_MIN_MACS = 1 << 23  # a time loop's matmuls use all CPU threads from B*H*H = 8M multiply-adds
# Cell plans cached. A search rarely meets an architecture twice except in a row (a validation pass,
# a derivation candidate's few batches), and every plan holds a dozen small tensors (see "Memory").
PLAN_CACHE = 64


def edge_index(parent: int, node: int) -> int:
    """Row of ``SuperNet.edges`` that holds the (parent -> node) weight pair."""
    return node * (node - 1) // 2 + parent


def num_edges(num_nodes: int) -> int:
    return num_nodes * (num_nodes - 1) // 2


# -- activations: forward into a buffer, and c * f'(z) expressed through the output f = f(z) --------

def _tanh(z: Tensor, out: Tensor) -> Tensor:
    return torch.tanh(z, out=out)


def _relu(z: Tensor, out: Tensor) -> Tensor:
    return torch.clamp_min(z, 0.0, out=out)


def _identity(z: Tensor, out: Tensor) -> Tensor:
    return out.copy_(z)


def _sigmoid(z: Tensor, out: Tensor) -> Tensor:
    return torch.sigmoid(z, out=out)


_FORWARD = {"tanh": _tanh, "relu": _relu, "identity": _identity, "sigmoid": _sigmoid}
_ACT_FORWARD = tuple(_FORWARD[name] for name in ACTIVATIONS)


def _gated_derivative(act: int, f: Tensor, c: Tensor, out: Tensor) -> None:
    """out = c * act'(z), from the activation's output f (so z need not be kept); in place, because
    fresh multi-megabyte temporaries cost more in page faults than the arithmetic."""
    name = ACTIVATIONS[act]
    if name == "tanh":  # c (1 - f^2)
        torch.mul(c, f, out=out).mul_(f)
        torch.sub(c, out, out=out)
    elif name == "relu":
        torch.mul(c, f > 0, out=out)
    elif name == "identity":
        out.copy_(c)
    else:  # sigmoid: c f (1 - f)
        torch.mul(c, f, out=out).addcmul_(out, f, value=-1)


# -- the per-architecture plan ---------------------------------------------------------------------

@dataclass(frozen=True)
class Level:
    """Nodes of one depth >= 1, at storage positions start..stop (grouped by activation)."""

    start: int
    stop: int
    prev: tuple[int, int]  # storage positions of the previous level, where all the parents are
    parent_index: Tensor  # (k,) storage positions of the parents
    parent_run: tuple[int, int] | None  # the same positions when they are one ascending run
    single_parent: int | None  # the same positions when they are all one node
    scatter: Tensor  # (k_prev, k) 0/1: child j's parent is previous-level node i; adds grads to parents
    groups: tuple[tuple[int, int, int], ...]  # (start, stop, activation), relative to ``start``

    def parent_views(self, values: Tensor) -> Tensor | None:
        """The parents' values (k, steps, B, H) as a view of ``values`` (N, steps, B, H), or None
        when they are scattered and must be gathered (index_select) at every step."""
        if self.parent_run is not None:
            return values[self.parent_run[0]:self.parent_run[1]]
        if self.single_parent is not None:
            p = self.single_parent
            return values[p:p + 1].expand(self.stop - self.start, -1, -1, -1)
        return None


@dataclass(frozen=True)
class CellPlan:
    """An architecture laid out for the batched cell; storage position 0 is node 0."""

    order: tuple[int, ...]  # node id at each storage position
    act0: int
    levels: tuple[Level, ...]
    edge_rows: Tensor  # (N-1,) row of ``edges`` for positions 1..N-1
    parent_index: Tensor  # (N-1,) parent position of positions 1..N-1
    groups: tuple[tuple[int, int, int], ...]  # (start, stop, activation) over all positions
    leaf_weight: Tensor  # (1, N): 1/#leaves at leaf positions, else 0

    @property
    def num_nodes(self) -> int:
        return len(self.order)


@lru_cache(maxsize=PLAN_CACHE)
def make_plan(arch: Architecture, device: torch.device, dtype: torch.dtype) -> CellPlan:
    """Lay out ``arch`` level by level, by activation inside a level (cached per architecture)."""
    by_depth: dict[int, list[int]] = {}
    for node in range(1, arch.num_nodes):
        by_depth.setdefault(arch.depths[node], []).append(node)
    order: list[int] = [0]
    levels: list[Level] = []
    for depth in sorted(by_depth):
        prev = (levels[-1].start, levels[-1].stop) if levels else (0, 1)
        levels.append(_make_level(arch, by_depth[depth], order, prev, device, dtype))
    pos = {node: i for i, node in enumerate(order)}
    leaf_weight = torch.zeros(1, arch.num_nodes, dtype=dtype)
    leaf_weight[0, [pos[leaf] for leaf in arch.leaves]] = 1.0 / len(arch.leaves)
    return CellPlan(
        order=tuple(order),
        act0=arch.activations[0],
        levels=tuple(levels),
        edge_rows=torch.tensor([edge_index(arch.parents[j - 1], j) for j in order[1:]], device=device),
        parent_index=torch.tensor([pos[arch.parents[j - 1]] for j in order[1:]], device=device),
        groups=((0, 1, arch.activations[0]),) + tuple(
            (lv.start + a, lv.start + b, act) for lv in levels for a, b, act in lv.groups),
        leaf_weight=leaf_weight.to(device),
    )


def _make_level(arch: Architecture, nodes: list[int], order: list[int], prev: tuple[int, int],
                device: torch.device, dtype: torch.dtype) -> Level:
    """Append one depth's nodes to ``order`` (sorted by activation, then parent) and describe them."""
    pos = {node: i for i, node in enumerate(order)}
    nodes = sorted(nodes, key=lambda j: (arch.activations[j], pos[arch.parents[j - 1]], j))
    start = len(order)
    order.extend(nodes)
    parents = [pos[arch.parents[j - 1]] for j in nodes]
    run = (parents[0], parents[-1] + 1) if parents == list(range(parents[0], parents[-1] + 1)) else None
    single = parents[0] if run is None and len(set(parents)) == 1 else None
    scatter = torch.zeros(prev[1] - prev[0], len(nodes), dtype=dtype)
    scatter[[p - prev[0] for p in parents], list(range(len(nodes)))] = 1.0
    return Level(start, len(order), prev, torch.tensor(parents, device=device), run, single,
                 scatter.to(device), _groups([arch.activations[j] for j in nodes]))


def _groups(acts: list[int]) -> tuple[tuple[int, int, int], ...]:
    """Runs of equal activation in an activation-sorted list: (start, stop, activation)."""
    runs: list[tuple[int, int, int]] = []
    for i, act in enumerate(acts):
        if runs and runs[-1][2] == act:
            runs[-1] = (runs[-1][0], i + 1, act)
        else:
            runs.append((i, i + 1, act))
    return tuple(runs)


# -- scratch memory reused across calls -----------------------------------------------------------

class Workspace:
    """The cell's large buffers, allocated once and reused by every call, whatever the architecture.

    Each buffer is one flat allocation viewed in the shape a call needs (the first numel elements,
    so every view is contiguous), reallocated only when a call needs more than it holds. The
    buffers come in two groups: ``forward`` (node values, gates, activations; a training forward
    keeps them for its backward) and ``backward`` (scratch of the backward pass). A group is leased
    to one call at a time; a call that finds its group leased (say, a second forward before the
    first one's backward) gets fresh allocations instead, so results never depend on reuse.
    Leases are not locked: one thread at a time uses a model, as in training.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}
        self._leased: set[str] = set()

    def lease(self, group: str) -> Lease | None:
        if group in self._leased:
            return None
        self._leased.add(group)
        return Lease(self, group)

    def _take(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        numel = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < numel or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._buffers[name] = like.new_empty(numel)
        return buf[:numel].view(shape)

    def storage_pointers(self) -> dict[str, int]:
        """Where each buffer lives (for tests: a buffer reused is a pointer unchanged)."""
        return {name: buf.data_ptr() for name, buf in self._buffers.items()}


class Lease:
    """One group of a workspace, held until ``release`` or until the lease is garbage-collected:
    a training forward stores its lease on the autograd node, so a graph freed without a backward
    (a skipped non-finite step) gives the buffers back too."""

    def __init__(self, workspace: Workspace, group: str):
        self.workspace, self.group, self.held = workspace, group, True

    def take(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        return self.workspace._take(f"{self.group}.{name}", shape, like)

    def release(self) -> None:
        if self.held:
            self.held = False
            self.workspace._leased.discard(self.group)

    __del__ = release


def _allocator(workspace: Workspace | None, group: str):
    """(lease or None, take(name, shape, like)): buffers from the workspace when its group is free,
    else fresh ones."""
    lease = workspace.lease(group) if workspace is not None else None
    if lease is None:
        return None, lambda name, shape, like: like.new_empty(shape)
    return lease, lease.take


# -- the recurrence, forward and hand-written backward through time --------------------------------

def _call(fn, *args, **kwargs):
    return fn(*args, **kwargs)


@contextmanager
def _loop_threads(x: Tensor, batch: int, hidden: int):
    """Run a time loop on one CPU thread; yields the caller for its matmuls, which get every thread
    when they are big enough to split (B*H*H >= PARALLEL_MIN_MACS).

    A parallel region costs more than it saves on a few thousand elements, and when the cores are
    shared each region waits for a descheduled thread. Measured on 2 busy cores: the hidden-64 cell
    ran 7x slower on 2 threads than on 1, and at hidden 1000 a (2, 32, 1000) copy took 8 ms.
    """
    threads = torch.get_num_threads()
    if x.device.type != "cpu" or threads == 1:
        yield _call
        return

    def wide(fn, *args, **kwargs):
        torch.set_num_threads(threads)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(1)

    torch.set_num_threads(1)
    try:
        yield wide if batch * hidden * hidden >= PARALLEL_MIN_MACS else _call
    finally:
        torch.set_num_threads(threads)


def _cell_forward(xz: Tensor, h: Tensor, w0: Tensor, we: Tensor, plan: CellPlan, max_norm: float,
                  keep: bool, workspace: Workspace | None = None):
    """Run the cell over all T steps: (states, norms, values, gates, acts, lease). Node values, gates
    and activations are kept (node-major, (N, T, B, H), so that each edge's rows over all steps form
    one matrix) when ``keep``, and so are the norms (T, B, 1) of the states before the clip when
    ``max_norm`` > 0. Buffers come from ``workspace`` when it is free; the lease that holds them is
    returned when ``keep`` (the caller releases it), else released here. ``states`` is always fresh.

    Every view the loop touches is made before it (``unbind`` makes all T of them in one call):
    at hidden 64 a step's arithmetic is a few microseconds per op, so Python-side slicing matters.
    """
    T, B, H2 = xz.shape
    H, N, steps_kept = H2 // 2, plan.num_nodes, T if keep else 1
    lease, take = _allocator(workspace, "forward")
    values, gates, acts = (take(name, (N, steps_kept, B, H), xz) for name in ("values", "gates", "acts"))
    states, norms = xz.new_empty(T, B, H), take("norms", (steps_kept, B, 1), xz)
    z0, z, gathered = take("z0", (B, H2), xz), take("z", (N, B, H2), xz), take("gathered", (N, B, H), xz)

    def steps(x: Tensor, dim: int = 1) -> tuple[Tensor, ...]:  # the T per-step views along ``dim``
        return x.unbind(dim) if keep else x.unbind(dim) * T

    levels = []
    for lv in plan.levels:
        a, b, zl = lv.start, lv.stop, z[:lv.stop - lv.start]
        parents = lv.parent_views(values)
        groups = tuple((zl[ga:gb, :, H:], _ACT_FORWARD[act], steps(acts[a + ga:a + gb]))
                       for ga, gb, act in lv.groups)
        levels.append((None if parents is None else steps(parents), lv.parent_index, gathered[:b - a],
                       we[a - 1:b - 1], zl, zl[..., :H], groups, steps(gates[a:b]), steps(acts[a:b]),
                       steps(values[a:b])))
    act0, all_v, flat_v = _ACT_FORWARD[plan.act0], steps(values), steps(values.view(N, -1, B * H))
    v0, c0, f0 = (steps(buf[0], dim=0) for buf in (values, gates, acts))
    z0c, z0h, x_steps, leaf = z0[:, :H], z0[:, H:], xz.unbind(0), plan.leaf_weight
    h_steps, flat_states = states.unbind(0), states.view(T, 1, B * H).unbind(0)
    norm_steps, ratio = steps(norms, dim=0), take("ratio", (B, 1), xz)
    with _loop_threads(xz, B, H) as matmul:
        for t in range(T):
            matmul(torch.addmm, x_steps[t], h, w0, out=z0)
            torch.sigmoid(z0c, out=c0[t])
            act0(z0h, out=f0[t])
            torch.lerp(h, f0[t], c0[t], out=v0[t])
            for parents, index, gather, w, zl, zc, groups, c, f, v in levels:  # one matmul per level
                p = parents[t] if parents is not None else torch.index_select(all_v[t], 0, index, out=gather)
                matmul(torch.bmm, p, w, out=zl)
                torch.sigmoid(zc, out=c[t])
                for zh, fn, fg in groups:
                    fn(zh, out=fg[t])
                torch.lerp(p, f[t], c[t], out=v[t])
            torch.mm(leaf, flat_v[t], out=flat_states[t])
            h = h_steps[t]
            if max_norm > 0:  # h <- h / max(|h| / c, 1) row-wise; unclipped rows are divided by 1.0
                torch.linalg.vector_norm(h, dim=1, keepdim=True, out=norm_steps[t])
                torch.div(norm_steps[t], max_norm, out=ratio).clamp_min_(1.0)
                h.div_(ratio)
    if lease is not None and not keep:
        lease.release()
    return states, norms, values, gates, acts, lease if keep else None


class _Cell(torch.autograd.Function):
    """The whole recurrence as one autograd node (see the module docstring for why)."""

    @staticmethod
    def forward(ctx, xz: Tensor, h0: Tensor, w0: Tensor, we: Tensor, plan: CellPlan, max_norm: float,
                workspace: Workspace | None) -> Tensor:
        states, norms, values, gates, acts, lease = _cell_forward(xz, h0, w0, we, plan, max_norm,
                                                                  keep=True, workspace=workspace)
        ctx.plan, ctx.max_norm, ctx.workspace = plan, max_norm, workspace
        ctx.lease = lease  # the saved buffers stay leased while this node lives (see Lease)
        ctx.save_for_backward(h0, w0, we, states, norms, values, gates, acts)
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states: Tensor):
        plan: CellPlan = ctx.plan
        h0, w0, we, states, norms, values, gates, acts = ctx.saved_tensors
        N, T, B, H = values.shape
        lease, take = _allocator(ctx.workspace, "backward")
        h_prev = torch.cat([h0.unsqueeze(0), states[:-1]], out=take("h_prev", (T, B, H), h0))  # node 0's input
        parents = torch.index_select(values, 0, plan.parent_index,  # the other nodes' inputs
                                     out=take("parents", (N - 1, T, B, H), values))
        # dz = dv * [(f - p) c (1 - c) | c f'(z)]: the bracket is formed for all steps at once, and
        # the time loop scales it in place, so ``dz`` ends up holding the pre-activation gradients.
        dz = _local_derivatives(plan, h_prev, parents, gates, acts, take("dz", (N, T, B, 2 * H), acts))
        dv = take("dv", (N, B, H), h0)  # one step's gradient w.r.t. every node's value
        gate_scratch = take("through_gate", (N, B, H), h0)
        levels = [_backward_views(lv, dv, dz, gates, we, gate_scratch) for lv in reversed(plan.levels)]
        w0_t, leaf, d0, d0_split = w0.t(), plan.leaf_weight.view(N, 1, 1), dv[0], dv[0].unsqueeze(1)
        dz0, dz0_split, c0 = dz[0].unbind(0), dz[0].view(T, B, 2, H).unbind(0), gates[0].unbind(0)
        carry, g, grads = take("carry", (B, H), h0).zero_(), take("g", (B, H), h0), grad_states.unbind(0)
        clipped, leaf_clip, along = _clip_backward_terms(states, norms, leaf, ctx.max_norm)
        with _loop_threads(h0, B, H) as matmul:
            for t in range(T - 1, -1, -1):
                torch.add(grads[t], carry, out=g)  # the gradient of this step's (clipped) state
                if clipped[t]:  # through the clip: a (g - q h' (h'.g)), see _clip_backward_terms
                    g.addcmul_(along[t], torch.linalg.vecdot(states[t], g).unsqueeze(1), value=-1)
                    torch.mul(leaf_clip[t], g, out=dv)
                else:
                    torch.mul(leaf, g, out=dv)
                for d, d_split, d_prev, scatter, w_t, dzl, dzl_split, c, through_gate in levels:  # deepest first
                    dzl_split[t].mul_(d_split)
                    torch.addcmul(d, d, c[t], value=-1, out=through_gate)  # d * (1 - c)
                    matmul(through_gate.baddbmm_, dzl[t], w_t)  # ... plus what reaches the parents via z
                    d_prev.addmm_(scatter, through_gate.view(through_gate.shape[0], -1))  # add into them
                dz0_split[t].mul_(d0_split)
                torch.addcmul(d0, d0, c0[t], value=-1, out=carry)
                matmul(carry.addmm_, dz0[t], w0_t)
        # Weight gradients: one matmul per edge over all T*B rows (no copies in this layout).
        grad_w0 = h_prev.view(T * B, H).t() @ dz[0].view(T * B, 2 * H)
        grad_we = torch.bmm(parents.view(N - 1, T * B, H).transpose(1, 2), dz[1:].view(N - 1, T * B, 2 * H))
        grad_xz, grad_h0 = dz[0].clone(), carry.clone()  # the workspace must not escape
        if lease is not None:
            lease.release()
        return grad_xz, grad_h0, grad_w0, grad_we, None, None, None


def _clip_backward_terms(states: Tensor, norms: Tensor, leaf: Tensor,
                         max_norm: float) -> tuple[list[bool], Tensor | None, Tensor | None]:
    """What the backward needs to pass a state gradient g through the per-step clip, for all steps.

    A clipped row h' = h c / n (n = |h| > c) has the symmetric Jacobian (c / n)(I - h' h'^T / c^2),
    so dh = a (g - q h' (h'.g)) with a = c / n and q = 1 / c^2; an unclipped row has a = 1, q = 0.
    Returns which steps clipped any row (the others skip the extra ops; off the CPU, where finding
    out means waiting for the device, every step is treated as clipped, which the formula computes
    exactly for unclipped rows too), ``leaf`` scaled by a for every step (T, N, B, 1), and q h'
    (T, B, H).
    """
    if max_norm <= 0:
        return [False] * states.shape[0], None, None
    over = norms > max_norm
    if reads_on_host(states):
        clipped = over.flatten(1).any(1).tolist()  # one host read per backward, not one per step
        if not any(clipped):
            return clipped, None, None
    else:  # reading the flags would stall the device's queue: every step takes the exact general form
        clipped = [True] * states.shape[0]
    scale = max_norm / norms.clamp_min(max_norm)  # a: c / n where clipped, else 1
    leaf_clip = leaf.unsqueeze(0) * scale.unsqueeze(1)
    along = states * over.to(states.dtype).div_(max_norm * max_norm)
    return clipped, leaf_clip, along


def _backward_views(lv: Level, dv: Tensor, dz: Tensor, gates: Tensor, we: Tensor, scratch: Tensor) -> tuple:
    """Everything one level's backward step touches, as views made once (see _cell_forward)."""
    a, b = lv.start, lv.stop
    k, T, B, H2 = dz[a:b].shape
    return (dv[a:b], dv[a:b].unsqueeze(2), dv[lv.prev[0]:lv.prev[1]].view(-1, B * H2 // 2), lv.scatter,
            we[a - 1:b - 1].transpose(1, 2), dz[a:b].unbind(1), dz[a:b].view(k, T, B, 2, H2 // 2).unbind(1),
            gates[a:b].unbind(1), scratch[:k])


def _local_derivatives(plan: CellPlan, h_prev: Tensor, parents: Tensor, gates: Tensor,
                       acts: Tensor, dz: Tensor) -> Tensor:
    """d v / d z for every node and step, (N, T, B, 2H): [(f - p) c (1 - c) | c f'(z)], into ``dz``."""
    dzc = dz[..., :acts.shape[-1]]
    torch.sub(acts[0], h_prev, out=dzc[0])
    torch.sub(acts[1:], parents, out=dzc[1:])
    dzc.mul_(gates).addcmul_(dzc, gates, value=-1)
    for a, b, act in plan.groups:
        _gated_derivative(act, acts[a:b], gates[a:b], dz[a:b, ..., acts.shape[-1]:])
    return dz


def run_cell(xz: Tensor, h0: Tensor, w0: Tensor, we: Tensor, plan: CellPlan, max_norm: float = 0.0,
             workspace: Workspace | None = None) -> Tensor:
    """States (T, B, H) of the cell; ``xz`` is x W_x for all steps, ``we`` the used edges by position.
    Every step's state (output and next input) has its rows clipped to norm ``max_norm`` (0: off).
    Large buffers come from ``workspace`` (None: fresh allocations)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (xz, h0, w0, we)):
        return _Cell.apply(xz, h0, w0, we, plan, max_norm, workspace)
    return _cell_forward(xz, h0, w0, we, plan, max_norm, keep=False, workspace=workspace)[0]


# -- fused decoder + cross-entropy -----------------------------------------------------------------

class _LinearCrossEntropy(torch.autograd.Function):
    """mean CE(x W^T + b, y), gradients formed chunk by chunk during the forward (it is always
    followed by a backward when this path is taken), so no (rows, V) tensor outlives a chunk."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, targets: Tensor) -> Tensor:
        grad_x, grad_w, grad_b = torch.empty_like(x), torch.zeros_like(weight), torch.zeros_like(bias)
        total = x.new_zeros(())
        logits = x.new_empty(min(LOSS_CHUNK, x.shape[0]), weight.shape[0])
        for s in range(0, x.shape[0], LOSS_CHUNK):
            xc, yc = x[s:s + LOSS_CHUNK], targets[s:s + LOSS_CHUNK, None]
            probs, nll = _softmax_nll(xc, weight, bias, yc, logits[:xc.shape[0]])
            total += nll
            probs.scatter_add_(1, yc, probs.new_full(yc.shape, -1.0))  # d nll / d logits
            torch.mm(probs, weight, out=grad_x[s:s + LOSS_CHUNK])
            grad_w.addmm_(probs.t(), xc)
            grad_b += probs.sum(0)
        ctx.save_for_backward(grad_x, grad_w, grad_b)
        ctx.n = x.shape[0]
        return total / x.shape[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        grad_x, grad_w, grad_b = ctx.saved_tensors
        scale = grad / ctx.n
        return grad_x * scale, grad_w * scale, grad_b * scale, None


def _softmax_nll(x: Tensor, weight: Tensor, bias: Tensor, targets: Tensor,
                 logits: Tensor) -> tuple[Tensor, Tensor]:
    """softmax(x W^T + b), in the buffer ``logits``, and the summed NLL of ``targets`` (rows, 1).
    One exp per logit, in place: torch.softmax and an addmm with a broadcast bias were both
    several times slower on CPU than these plain passes."""
    torch.mm(x, weight.t(), out=logits).add_(bias)
    picked = logits.gather(1, targets)
    top = logits.amax(1, keepdim=True)
    probs = logits.sub_(top).exp_()
    total = probs.sum(1, keepdim=True)
    nll = (top + total.log() - picked).sum()
    return probs.div_(total), nll


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of the logits x W^T + b against ``targets``, without keeping the logits."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, weight, bias)):
        return _LinearCrossEntropy.apply(x, weight, bias, targets)
    total = x.new_zeros(())
    logits = x.new_empty(min(LOSS_CHUNK, x.shape[0]), weight.shape[0])
    for s in range(0, x.shape[0], LOSS_CHUNK):
        xc = x[s:s + LOSS_CHUNK]
        total += _softmax_nll(xc, weight, bias, targets[s:s + LOSS_CHUNK, None], logits[:xc.shape[0]])[1]
    return total / x.shape[0]


# -- the model -------------------------------------------------------------------------------------

def _dropout_mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p). Drawn as uniform >= p, which on
    CPU is about 3x faster than bernoulli_ (the draw dominates DropConnect at large hidden sizes)."""
    return like.new_empty(shape).uniform_().ge_(p).div_(1 - p)


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Elementwise dropout (DropConnect when applied to a weight)."""
    return x * _dropout_mask(x, x.shape, p) if training and p > 0 else x


def _locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Variational dropout: one mask per sequence, the same at every time step of (T, B, H)."""
    return x * _dropout_mask(x, (1, *x.shape[1:]), p) if training and p > 0 else x


class CellLanguageModel(nn.Module, ABC):
    """Embedding -> ENAS cell -> tied decoder, with ``edge_rows`` edge weight pairs in ``edges``.

    The search's SuperNet holds one pair per possible (parent, node) edge and picks an architecture's
    rows at every step; a retrained cell (retrain/model.py) holds only its own. Both run the same
    forward and backward (``run_cell``): subclasses only say which rows an architecture uses.
    """

    def __init__(self, vocab_size: int, cfg: ModelConfig, edge_rows: int):
        super().__init__()
        self.vocab_size, self.cfg = vocab_size, cfg
        h = cfg.hidden
        self.encoder = nn.Embedding(vocab_size, h)  # also the decoder's weight (tied)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.w_x = nn.Parameter(torch.empty(h, 2 * h))  # x -> [c | pre-activation] of node 0
        self.w_h = nn.Parameter(torch.empty(h, 2 * h))  # h_{t-1} -> [c | pre-activation] of node 0
        self.edges = nn.Parameter(torch.empty(edge_rows, h, 2 * h))
        for p in (self.encoder.weight, self.w_x, self.w_h, self.edges):
            nn.init.uniform_(p, -INIT_RANGE, INIT_RANGE)
        self.workspace = Workspace()  # the cell's buffers, reused across calls and architectures

    def init_hidden(self, batch_size: int) -> Tensor:
        return self.w_h.new_zeros(batch_size, self.cfg.hidden)

    def plan(self, arch: Architecture) -> CellPlan:
        if arch.num_nodes != self.cfg.num_nodes:
            raise ArchitectureError(
                f"architecture has {arch.num_nodes} nodes, the model has {self.cfg.num_nodes}")
        return make_plan(arch, self.w_h.device, self.w_h.dtype)

    @abstractmethod
    def edge_weights(self, plan: CellPlan) -> Tensor:
        """The weight pairs of ``plan``'s edges in storage order, (N-1, H, 2H): what run_cell reads."""

    def features(self, tokens: Tensor, hidden: Tensor, arch: Architecture) -> tuple[Tensor, Tensor]:
        """Decoder inputs (T, B, H) after output dropout, and the new state (B, H)."""
        plan, cfg, training = self.plan(arch), self.cfg, self.training
        x = self.encoder(tokens)
        if training and cfg.dropout_emb > 0:  # drop whole words: the same rows at every position
            x = x * _dropout_mask(x, (self.vocab_size, 1), cfg.dropout_emb)[tokens]
        x = _locked_dropout(x, cfg.dropout_in, training)
        w0 = _dropout(self.w_h, cfg.dropconnect, training)  # DropConnect, once per minibatch
        we = _dropout(self.edge_weights(plan), cfg.dropconnect, training)
        states = run_cell(x @ self.w_x, hidden, w0, we, plan, cfg.max_hidden_norm, self.workspace)
        # the new state in its own storage: a view would keep all T states alive, and a checkpoint
        # of it would save them all
        return _locked_dropout(states, cfg.dropout_out, training), states[-1].clone()

    def forward(self, tokens: Tensor, hidden: Tensor, arch: Architecture) -> tuple[Tensor, Tensor]:
        """Logits (T, B, V) and the new state (B, H), not detached."""
        out, hidden = self.features(tokens, hidden, arch)
        return F.linear(out, self.encoder.weight, self.decoder_bias), hidden

    def loss(self, tokens: Tensor, targets: Tensor, hidden: Tensor,
             arch: Architecture) -> tuple[Tensor, Tensor]:
        """Mean token cross-entropy and the new state; the (T, B, V) logits are never materialised."""
        out, hidden = self.features(tokens, hidden, arch)
        loss = linear_cross_entropy(out.reshape(-1, out.shape[-1]), self.encoder.weight,
                                    self.decoder_bias, targets.reshape(-1))
        return loss, hidden

    @torch.no_grad()
    def perplexity(self, arch: Architecture, data: Tensor, bptt: int, max_batches: int | None = None,
                   start: int = 0) -> float:
        """exp(mean token NLL) over BPTT chunks of ``data`` (T_total, B), state carried, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            hidden = self.init_hidden(data.shape[1])
            total, count = torch.zeros((), dtype=torch.float64, device=data.device), 0
            for n, i in enumerate(range(start, data.shape[0] - 1, bptt)):
                if max_batches is not None and n >= max_batches:
                    break
                tokens, targets = get_batch(data, i, bptt)
                loss, hidden = self.loss(tokens, targets, hidden, arch)
                total += loss.double() * targets.numel()
                count += targets.numel()
        finally:
            self.train(was_training)
        if count == 0:
            raise ValueError(f"no evaluation tokens: data has {data.shape[0]} rows, start is {start}")
        mean_nll = total.item() / count
        return math.exp(mean_nll) if mean_nll < 700 else math.inf


class SuperNet(CellLanguageModel):
    """The weight-sharing model: one weight pair per (parent, node) edge, for any architecture of
    ``cfg.num_nodes`` nodes; ``edges[edge_index(i, j)]`` is the (i -> j) pair."""

    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__(vocab_size, cfg, num_edges(cfg.num_nodes))

    def edge_weights(self, plan: CellPlan) -> Tensor:
        return self.edges.index_select(0, plan.edge_rows)


def reads_on_host(x: Tensor) -> bool:
    """Whether code may read a value of ``x`` back to Python to decide what to do next.

    On the CPU that costs nothing, and it saves work (a backward skipped, a step's clip terms left
    out). On an accelerator it waits for every queued kernel to finish, so the host stops feeding
    the device; there the same decisions are made on the device with masks instead.
    """
    return x.device.type == "cpu"


def train_step(model: CellLanguageModel, optimizer: torch.optim.Optimizer, tokens: Tensor, targets: Tensor,
               hidden: Tensor, arch: Architecture, grad_clip: float) -> tuple[Tensor, Tensor, Tensor]:
    """One SGD step of a cell model (the search's shared weights or a retrained cell): (loss, new
    state, finite), 0-dim tensors and the (B, H) state on the model's device, none of them waited
    for. A step whose loss or gradient norm is not finite changes no weight and ``finite`` is
    False, so the caller can record it and skip the minibatch.

    Off the CPU the step never reads a value back (see ``reads_on_host``): the backward always
    runs, and a non-finite step has its gradients zeroed on the device (``masked_fill_``, since
    NaN * 0 is NaN) before the update, which then leaves the weights as they were: that needs an
    SGD step without momentum or weight decay (the ENAS shared optimiser); any other optimiser
    (e.g. the retrain's SGD with weight decay) is checked on the host.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, hidden = model.loss(tokens, targets, hidden, arch)
    hidden = hidden.detach()
    if reads_on_host(loss) or not _zero_grad_is_no_step(optimizer):
        return _host_checked_step(model, optimizer, loss, hidden, grad_clip)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
    skip = finite.logical_not()
    for p in model.parameters():
        if p.grad is not None:
            p.grad.masked_fill_(skip, 0.0)
    optimizer.step()
    return loss.detach(), hidden, finite


def _host_checked_step(model: CellLanguageModel, optimizer: torch.optim.Optimizer, loss: Tensor, hidden: Tensor,
                       grad_clip: float) -> tuple[Tensor, Tensor, Tensor]:
    """train_step deciding on the host: a non-finite loss skips the backward, a non-finite norm the update."""
    value = loss.detach()
    if not math.isfinite(value.item()):
        return value, hidden, torch.tensor(False, device=value.device)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if not math.isfinite(norm.item()):
        optimizer.zero_grad(set_to_none=True)
        return value, hidden, torch.tensor(False, device=value.device)
    optimizer.step()
    return value, hidden, torch.tensor(True, device=value.device)


def _zero_grad_is_no_step(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a zero gradient leaves every weight unchanged: plain SGD (no momentum, no decay)."""
    return type(optimizer) is torch.optim.SGD and all(
        group["momentum"] == 0 and group["weight_decay"] == 0 for group in optimizer.param_groups)


def get_batch(data: Tensor, i: int, bptt: int) -> tuple[Tensor, Tensor]:
    """Rows i..i+bptt of ``data`` (T_total, B) and the same rows shifted by one as targets."""
    n = min(bptt, data.shape[0] - 1 - i)
    return data[i:i + n], data[i + 1:i + 1 + n]


def count_flops_per_token(cfg: ModelConfig, vocab_size: int, arch: Architecture) -> float:
    """Matmul FLOPs per token for forward + backward (3x the forward): the input projection, node 0's
    recurrent matmul, one H x 2H matmul per edge (every architecture has N-1), and the decoder."""
    h = cfg.hidden
    forward = 2 * h * 2 * h * (2 + arch.num_nodes - 1) + 2 * h * vocab_size
    return 3.0 * forward
