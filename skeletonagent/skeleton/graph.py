"""Graph adjacency matrices of a skeleton layout (PYSKL / official ``Graph``)."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .layouts import Layout, get_layout

__all__ = ['Graph', 'edge2mat', 'normalize_digraph', 'get_hop_distance', 'k_adjacency']

MODES = ('spatial', 'stgcn_spatial', 'binary_adj', 'random')


def edge2mat(edges: Iterable[tuple[int, int]], num_node: int) -> np.ndarray:
    """Adjacency with ``A[j, i] = 1`` for every edge ``(i, j)`` (float64, V×V)."""
    adj = np.zeros((num_node, num_node))
    edges = list(edges)
    if edges:
        src, dst = np.asarray(edges).T
        adj[dst, src] = 1
    return adj


def normalize_digraph(adj: np.ndarray, dim: int = 0) -> np.ndarray:
    """Divide every column by its degree along ``dim`` (columns with degree 0 stay 0)."""
    degree = adj.sum(dim)
    inv = np.zeros_like(degree, dtype=np.float64)
    np.divide(1.0, degree, out=inv, where=degree > 0)
    return adj * inv[None, :]


def get_hop_distance(num_node: int, edges: Iterable[tuple[int, int]],
                     max_hop: int = 1) -> np.ndarray:
    """Hop distance between joints (``inf`` beyond ``max_hop``), as PYSKL computes it."""
    adj = np.eye(num_node)
    edges = list(edges)
    if edges:
        src, dst = np.asarray(edges).T
        adj[src, dst] = 1
        adj[dst, src] = 1
    hop_dis = np.full((num_node, num_node), np.inf)
    reach = np.stack([np.linalg.matrix_power(adj, d) for d in range(max_hop + 1)]) > 0
    for d in range(max_hop, -1, -1):
        hop_dis[reach[d]] = d
    return hop_dis


def k_adjacency(adj: np.ndarray, k: int, with_self: bool = False,
                self_factor: float = 1) -> np.ndarray:
    """Joints exactly ``k`` hops apart (PYSKL's ``k_adjacency``)."""
    adj = np.asarray(adj)
    iden = np.eye(len(adj), dtype=adj.dtype)
    if k == 0:
        return iden
    ak = (np.minimum(np.linalg.matrix_power(adj + iden, k), 1)
          - np.minimum(np.linalg.matrix_power(adj + iden, k - 1), 1))
    if with_self:
        ak += self_factor * iden
    return ak


class Graph:
    """Adjacency matrices of a skeleton layout.

    Args:
        layout: layout name (or :class:`Layout`).
        mode: 'spatial' (identity, normalised inward, normalised outward), 'stgcn_spatial'
            (ST-GCN's distance partitioning), 'binary_adj' (1 × V × V, undirected edges) or
            'random' (``num_filter`` × V × V drawn from ``np.random.randn`` — the global
            NumPy RNG, one call, so the same seed gives PYSKL's matrix).
        max_hop: hop limit of the ST-GCN partitioning.
        nx_node: repeat the joints this many times (random mode only).
        num_filter, init_std, init_off: size and distribution of the random adjacency.

    Attributes:
        A: float32 array K × V × V.
    """

    def __init__(self, layout: str | Layout = 'coco', mode: str = 'spatial', max_hop: int = 1,
                 nx_node: int = 1, num_filter: int = 3, init_std: float = 0.02,
                 init_off: float = 0.04) -> None:
        self.layout = get_layout(layout)
        if mode not in MODES:
            raise ValueError(f'unknown graph mode {mode!r}; known modes: {", ".join(MODES)}')
        if nx_node != 1 and mode != 'random':
            raise ValueError("nx_node can be > 1 only if mode is 'random'")
        self.mode = mode
        self.max_hop = max_hop
        self.nx_node = nx_node
        self.num_filter = num_filter
        self.init_std = init_std
        self.init_off = init_off

        self.num_node = self.layout.num_joints
        self.center = self.layout.center
        self.inward = list(self.layout.inward)
        self.outward = list(self.layout.outward)
        self.self_link = [(i, i) for i in range(self.num_node)]
        self.neighbor = self.inward + self.outward
        self.hop_dis = get_hop_distance(self.num_node, self.inward, max_hop)
        self.A: np.ndarray = getattr(self, mode)().astype(np.float32)

    def __repr__(self) -> str:
        return f'Graph(layout={self.layout.name!r}, mode={self.mode!r}, A={tuple(self.A.shape)})'

    def spatial(self) -> np.ndarray:
        iden = edge2mat(self.self_link, self.num_node)
        inward = normalize_digraph(edge2mat(self.inward, self.num_node))
        outward = normalize_digraph(edge2mat(self.outward, self.num_node))
        return np.stack((iden, inward, outward))

    def stgcn_spatial(self) -> np.ndarray:
        hop_dis = self.hop_dis
        adj = (hop_dis <= self.max_hop).astype(np.float64)
        normalize_adj = normalize_digraph(adj)
        # closer[j, i]: joint j is at least as far from the centre as joint i.
        dist_to_center = hop_dis[:, self.center]
        closer = dist_to_center[:, None] >= dist_to_center[None, :]
        parts = []
        for hop in range(self.max_hop + 1):
            at_hop = hop_dis == hop
            parts.append(np.where(at_hop & closer, normalize_adj, 0.0))
            if hop > 0:
                parts.append(np.where(at_hop & ~closer, normalize_adj, 0.0))
        return np.stack(parts)

    def binary_adj(self) -> np.ndarray:
        return edge2mat(self.inward + self.outward, self.num_node)[None]

    def random(self) -> np.ndarray:
        num_node = self.num_node * self.nx_node
        return np.random.randn(self.num_filter, num_node, num_node) * self.init_std + self.init_off
