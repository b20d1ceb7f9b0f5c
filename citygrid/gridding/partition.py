"""Group unit grids into contiguous supervision grids balanced on workload, and those into teams.

METIS (pymetis, contiguous k-way) gives the first partition of the adjacency graph; then a boundary
refinement moves single grids from the heaviest group to a lighter neighbour while both stay contiguous,
until the heaviest group is within tolerance of the mean. Disconnected pieces of a district (Chaoyang's
airport exclave) are partitioned separately, with group counts chosen to keep the heaviest group lightest.

Geometry in the deployment CRS (metres); everything else is arrays.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import pymetis
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry

from citygrid.errors import InvalidInput
from citygrid.gridding.shapes import polsby_popper

MIN_SHARED_EDGE_M = 0.5
DEFAULT_WEIGHTS = {"components": 1.0, "cases": 1.0, "roads": 1.0, "area": 1.0}
BALANCE_TOLERANCE = 0.02
METIS_UFACTOR = 30  # METIS allows 3 % imbalance; the refinement does the rest


@dataclass
class Graph:
    """Undirected adjacency of ``n`` nodes: edge arrays (i < j) with shared-boundary lengths in metres."""

    n: int
    left: np.ndarray
    right: np.ndarray
    length: np.ndarray
    neighbours: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.neighbours:
            self.neighbours = [[] for _ in range(self.n)]
            for a, b in zip(self.left.tolist(), self.right.tolist(), strict=True):
                self.neighbours[a].append(b)
                self.neighbours[b].append(a)


def adjacency(polygons: list[BaseGeometry]) -> Graph:
    """Edge-sharing adjacency of polygons (touching at a point does not count)."""
    geoms = np.asarray(polygons, dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    edges = shapely.boundary(geoms)
    length = shapely.length(shapely.intersection(edges[left], edges[right]))
    weak = length < MIN_SHARED_EDGE_M
    if weak.any():  # edges equal only up to floating-point noise
        near = shapely.buffer(edges[left[weak]], 0.05)
        length[weak] = shapely.length(shapely.intersection(edges[right[weak]], near)) / 2
    keep = length >= MIN_SHARED_EDGE_M
    return Graph(len(polygons), left[keep], right[keep], length[keep])


def workload(terms: dict[str, np.ndarray], weights: dict[str, float]) -> tuple[np.ndarray, dict[str, float]]:
    """Weighted sum of terms, each normalised by its mean; terms that are all zero drop out.

    Returns the workload per node and the weights actually used (recorded with the version).
    """
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise InvalidInput(f"unknown workload term(s) {', '.join(sorted(unknown))}; use "
                           f"{', '.join(DEFAULT_WEIGHTS)}", field="weights")
    if any(w < 0 for w in weights.values()):
        raise InvalidInput("workload weights must be ≥ 0", field="weights")
    n = len(next(iter(terms.values())))
    total = np.zeros(n)
    used: dict[str, float] = {}
    for name, weight in weights.items():
        values = np.asarray(terms.get(name, np.zeros(n)), dtype=float)
        if weight == 0 or values.sum() <= 0:
            continue
        total += weight * values / values.mean()
        used[name] = weight
    if not used:
        raise InvalidInput("every weighted workload term is zero; give area a positive weight", field="weights")
    return total, used


def group_loads(terms: dict[str, dict[str, float]], members: dict[str, list[str]], means: dict[str, float],
                weights: dict[str, float]) -> dict[str, float]:
    """Per supervision grid, the sum over its unit grids of each term divided by its district mean, weighted
    (``workload``'s measure; a term whose mean is zero drops out, as there): the impact preview's workloads and
    the stored workload of a supervision grid an edit touches.

    Parameters
    ----------
    terms : unit-grid code -> its terms (``store.workload_terms_of``).
    members : supervision-grid code -> its unit-grid codes.
    means : the district mean per unit grid of each term (``store.workload_means``).
    weights : term -> weight (the version's partition weights).
    """
    loads = {}
    for sup, units in members.items():
        total = 0.0
        for unit in units:
            for name, weight in weights.items():
                if weight and means.get(name, 0.0) > 0:
                    total += weight * terms.get(unit, {}).get(name, 0.0) / means[name]
        loads[sup] = total
    return loads


def allocate_parts(component_loads: np.ndarray, n_parts: int, field: str = "supervision_grids") -> np.ndarray:
    """Parts per connected component minimising the heaviest mean load (greedy on load / parts).

    ``field`` names the count the caller chose (``supervision_grids`` or ``teams``) in the error raised when
    there are fewer parts than components (a part never spans two detached pieces)."""
    k = len(component_loads)
    if n_parts < k:
        raise InvalidInput(f"{field} ({n_parts}) cannot cover the {k} detached pieces of the district (each of "
                           f"them needs its own); use --{field.replace('_', '-')} {k} or more", field=field)
    parts = np.ones(k, dtype=int)
    heap = [(-load, i) for i, load in enumerate(component_loads)]
    heapq.heapify(heap)
    for _ in range(n_parts - k):
        _, i = heapq.heappop(heap)
        parts[i] += 1
        heapq.heappush(heap, (-component_loads[i] / parts[i], i))
    return parts


def _metis(graph: Graph, nodes: np.ndarray, weights: np.ndarray, n_parts: int, seed: int) -> np.ndarray:
    """Contiguous METIS k-way partition of the subgraph on ``nodes``; returns a part per node (0..n_parts-1)."""
    if n_parts == 1:
        return np.zeros(len(nodes), dtype=int)
    index = {int(v): i for i, v in enumerate(nodes)}
    xadj, adjncy, eweights = [0], [], []
    lengths = {}
    for a, b, length in zip(graph.left.tolist(), graph.right.tolist(), graph.length.tolist(), strict=True):
        lengths[(a, b)] = lengths[(b, a)] = length
    for v in nodes.tolist():
        for u in graph.neighbours[v]:
            if u in index:
                adjncy.append(index[u])
                eweights.append(max(1, int(lengths[(v, u)])))
        xadj.append(len(adjncy))
    scale = 1000.0 / max(weights.mean(), 1e-12)
    vweights = np.maximum(1, np.round(weights * scale)).astype(int).tolist()
    options = pymetis.Options(contig=1, ufactor=METIS_UFACTOR, seed=seed, niter=20, ncuts=4)
    result = pymetis.part_graph(n_parts, pymetis.CSRAdjacency(adj_starts=xadj, adjacent=adjncy),
                                vweights=vweights, eweights=eweights, options=options)
    return np.asarray(result.vertex_part, dtype=int)


def _connected_without(graph: Graph, members: set[int], removed: int) -> bool:
    rest = members - {removed}
    if not rest:
        return False
    start = next(iter(rest))
    seen, stack = {start}, [start]
    while stack:
        v = stack.pop()
        for u in graph.neighbours[v]:
            if u in rest and u not in seen:
                seen.add(u)
                stack.append(u)
    return len(seen) == len(rest)


def _pieces(graph: Graph, members: set[int]) -> list[set[int]]:
    """Connected pieces of the subgraph induced by ``members``, largest first."""
    left, pieces = set(members), []
    while left:
        start = left.pop()
        piece, stack = {start}, [start]
        while stack:
            v = stack.pop()
            for u in graph.neighbours[v]:
                if u in left:
                    left.discard(u)
                    piece.add(u)
                    stack.append(u)
        pieces.append(piece)
    return sorted(pieces, key=len, reverse=True)


def make_contiguous(graph: Graph, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Give every stray piece of a group (METIS does not always honour contiguity) to the lightest
    neighbouring group, largest piece staying put; repeat until every group is one piece."""
    labels = labels.copy()
    n_parts = int(labels.max()) + 1
    for _ in range(10):
        loads = np.bincount(labels, weights=weights, minlength=n_parts)
        changed = False
        for p in range(n_parts):
            pieces = _pieces(graph, set(np.flatnonzero(labels == p).tolist()))
            for piece in pieces[1:]:
                around = {int(labels[u]) for v in piece for u in graph.neighbours[v] if labels[u] != p}
                if not around:
                    continue
                q = min(around, key=lambda g: loads[g])
                for v in piece:
                    labels[v] = q
                weight = float(weights[list(piece)].sum())
                loads[p] -= weight
                loads[q] += weight
                changed = True
        if not changed:
            break
    return labels


def rebalance(graph: Graph, labels: np.ndarray, weights: np.ndarray, tolerance: float = BALANCE_TOLERANCE,
              max_passes: int = 200) -> np.ndarray:
    """Diffuse load from heavier to lighter neighbouring groups one boundary node at a time.

    A node moves from group p to an adjacent group q when q stays lighter than p was
    (``load[q] + w < load[p]``, so the pair's maximum drops) and p stays contiguous; heavier groups go first.
    Passes repeat until max/mean − 1 ≤ ``tolerance`` or a pass moves nothing. Load flowing through
    intermediate groups lets the heaviest group shed weight even when its own neighbours were full.
    """
    labels = labels.copy()
    n_parts = int(labels.max()) + 1
    loads = np.bincount(labels, weights=weights, minlength=n_parts)
    members = [set(np.flatnonzero(labels == p).tolist()) for p in range(n_parts)]
    mean = loads.mean()
    for _ in range(max_passes):
        if loads.max() / mean - 1 <= tolerance:
            break
        moved_any = False
        for p in np.argsort(-loads).tolist():
            if loads[p] <= mean:
                break
            options = sorted(
                {(loads[int(labels[u])] + weights[v], v, int(labels[u]))
                 for v in members[p] for u in graph.neighbours[v]
                 if labels[u] != p and loads[int(labels[u])] + weights[v] < loads[p]}
            )
            for _, v, q in options:
                if labels[v] != p or not _connected_without(graph, members[p], v):
                    continue
                labels[v] = q
                members[p].discard(v)
                members[q].add(v)
                loads[p] -= weights[v]
                loads[q] += weights[v]
                moved_any = True
                break
        if not moved_any:
            break
    return labels


def pieces(graph: Graph) -> tuple[int, np.ndarray]:
    """Connected components of the graph (detached pieces of a district): their count and one per node."""
    matrix = coo_matrix((np.ones(len(graph.left)), (graph.left, graph.right)), shape=(graph.n, graph.n))
    n_comp, comp = connected_components(matrix, directed=False)
    return int(n_comp), comp


def partition(graph: Graph, weights: np.ndarray, n_parts: int, seed: int = 1, refine: bool = True,
              tries: int = 5, field: str = "supervision_grids") -> np.ndarray:
    """Contiguous groups of the graph's nodes balanced on ``weights``; returns the group index per node.

    ``refine`` runs METIS with ``tries`` seeds, rebalances each result and keeps the least imbalanced;
    ``refine=False`` is one plain METIS run (the baseline the benchmark compares against). ``field`` names
    the count in errors (``supervision_grids`` for unit grids into groups, ``teams`` for groups into teams).
    """
    if n_parts < 1:
        raise InvalidInput("the number of groups must be at least 1", field=field)
    if n_parts > graph.n:
        raise InvalidInput(f"{n_parts} groups asked for but there are only {graph.n} grids to group", field=field)
    n_comp, comp = pieces(graph)
    comp_loads = np.bincount(comp, weights=weights, minlength=n_comp)
    parts = allocate_parts(comp_loads, n_parts, field)
    best: np.ndarray | None = None
    for attempt in range(tries if refine else 1):
        labels = np.empty(graph.n, dtype=int)
        offset = 0
        for c in range(n_comp):
            nodes = np.flatnonzero(comp == c)
            labels[nodes] = _metis(graph, nodes, weights[nodes], int(parts[c]), seed + attempt) + offset
            offset += int(parts[c])
        if refine:
            labels = rebalance(graph, make_contiguous(graph, labels, weights), weights)
        if best is None or imbalance(labels, weights) < imbalance(best, weights):
            best = labels
    assert best is not None
    return best


def contiguous_groups(graph: Graph, labels: np.ndarray) -> np.ndarray:
    """Boolean per group: are its nodes connected through shared edges?"""
    n_parts = int(labels.max()) + 1
    ok = np.ones(n_parts, dtype=bool)
    for p in range(n_parts):
        members = set(np.flatnonzero(labels == p).tolist())
        ok[p] = bool(members) and _connected_without(graph, members | {-1}, -1)
    return ok


def imbalance(labels: np.ndarray, weights: np.ndarray) -> float:
    """max/mean − 1 of the group loads."""
    loads = np.bincount(labels, weights=weights)
    return float(loads.max() / loads.mean() - 1)


def group_report(polygons: list[BaseGeometry], labels: np.ndarray, weights: np.ndarray,
                 graph: Graph) -> list[dict[str, float]]:
    """Per group: workload, area_m2, unit_grids, polsby_popper, contiguous; the union geometry under 'geom'."""
    rows = []
    contiguous = contiguous_groups(graph, labels)
    geoms = np.asarray(polygons, dtype=object)
    for p in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == p)
        union = shapely.union_all(geoms[idx])
        rows.append({
            "group": p, "workload": float(weights[idx].sum()), "area_m2": float(union.area),
            "unit_grids": len(idx), "polsby_popper": float(polsby_popper(np.array([union]))[0]),
            "contiguous": bool(contiguous[p]), "geom": union,
        })
    return rows


def quotient_graph(graph: Graph, labels: np.ndarray) -> Graph:
    """Graph of the groups: two groups are adjacent when any of their members are; lengths summed."""
    a, b = labels[graph.left], labels[graph.right]
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    n = int(labels.max()) + 1
    key = lo * n + hi
    uniq, inverse = np.unique(key, return_inverse=True)
    lengths = np.bincount(inverse, weights=graph.length[keep])
    return Graph(n, uniq // n, uniq % n, lengths)
