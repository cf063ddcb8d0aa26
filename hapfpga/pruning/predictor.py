"""The pruning search's hardware objective: ``HwPredictor.predict(counts) -> HwPoint`` (pure: no torch, no FINN).

A prediction scales the unpruned model's FINN layer specs to a candidate's channel counts (and operand bits,
``plan.scale_layers``, ``bits.apply_operand_bits``) and folds them with the fold stage's own optimiser and
options (:class:`~hapfpga.folding.options.FoldingOptions`), so no FINN run is needed per candidate. Where the fold
stage also folds its second graph (``hapfpga/stages/variant.py``: standalone thresholds, each MVAU RTL or HLS),
the spec carries that graph as ``variant`` and a prediction is the faster of the two folds that fits, as the fold
stage keeps it. Everything a
prediction needs is one frozen, picklable :class:`PredictorSpec`: the multi-machine search publishes it to its
workers, and a batch of predictions runs in spawned processes that receive it (``HwPredictor(workers=N)``).
The spec is built from a model by ``hapfpga.pruning.hwmodel.build_predictor``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfeasibleError, SolverTimeLimitError
from ..folding.options import FoldingOptions
from ..types import Resources
from .search import HwPoint

__all__ = ["PredictorSpec", "HwPredictor", "HwTarget", "layers_key", "scaled_layers", "candidate_layers", "fold_candidate",
           "choose_graph", "default_cache_dir"]


@dataclass(frozen=True)
class PredictorSpec:
    """What one prediction needs: the unpruned model's FINN layer specs and how to scale and fold them.

    ``order`` lists the model's conv/linear layers in execution order (one per FINN MVAU), ``before`` their output
    channels, ``layer_to_group`` maps a layer to its channel group (empty: identity, for chains). ``options`` is
    the folding the prediction does (``FoldingOptions.for_predictor`` of the fold stage's). ``model_layers``
    (``plan.ModelLayer`` per entry of ``order``) maps FINN's MVAUs/VVAUs to the layers by shape, which non-chain
    and depthwise graphs need. ``base_bits``: the operand bits the specs were converted at (a ``bits:<layer>``
    knob that differs rewrites the specs' data types). ``acc_contributions``
    (``hapfpga.finn.graph.accumulator_contributions``) narrows pruned MVAUs' accumulators as FINN does.
    """

    layers: tuple[Any, ...]
    order: tuple[str, ...]
    before: Mapping[str, int]
    board: Any
    options: FoldingOptions = FoldingOptions()
    layer_to_group: Mapping[str, str] = field(default_factory=dict)
    model_layers: tuple[Any, ...] | None = None
    base_bits: Mapping[str, int] = field(default_factory=dict)
    acc_contributions: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    dag_bits: bool = False  # bits knobs are activation quantisers followed along FINN's streams (bits.DAG_BITS_MODELS)
    #: the fold stage's mixed graph (``stages/variant.py``): its FINN layer specs, folded with ``impl_knob``
    #: (None: the fold stage folds one graph)
    variant: PredictorSpec | None = None


#: how many times ``pruning.folding_time_limit`` one solve may run (wall-clock: on a loaded machine a solve gets a
#: fraction of a core). One solve with the whole allowance: HiGHS is deterministic and a cut solve's answer is
#: thrown away, so the former ladder of 1x, 4x and 16x solves gave the same answers as one 16x solve, after
#: spending up to 5x longer on the cut ones (a 2-core machine at load 10: 37 s of HiGHS for a 17 s solve).
ALLOWANCE = 16.0


def _default_optimise() -> Callable[..., Any]:
    from ..folding.optimise import optimise

    return optimise


def _solve_proven(optimise: Callable[..., Any], layers: list[Any], spec: PredictorSpec) -> Any:
    """``optimise`` on ``layers`` with ``ALLOWANCE`` times the time limit; a solve cut by it (no design, or a
    design not proven fastest) raises. HiGHS's incumbent at a time limit can be far from the optimum (a pruned
    CNV at 2 s: 63 FPS where the optimum is 7,972; or no design at all, which read as "does not fit"), so a
    prediction from it would mislead the search (the fix is a larger ``pruning.folding_time_limit``)."""
    limit = ALLOWANCE * float(spec.options.time_limit)
    try:
        res = optimise(layers, spec.board, dataclasses.replace(spec.options, time_limit=limit))
        if getattr(res, "optimal", True):
            return res
    except SolverTimeLimitError:
        pass
    raise SolverTimeLimitError(
        f"The folding solver could not prove the fastest folding of a pruning candidate in {limit:g} s; raise "
        f"pruning.folding_time_limit."
    )


def scaled_layers(spec: PredictorSpec, counts: Mapping[str, int]) -> list[Any]:
    """``spec``'s FINN layer specs scaled to ``counts``' channel counts and operand bits (what gets folded)."""
    from .bits import split_knobs
    from .plan import scale_layers

    order, before = list(spec.order), spec.before
    l2g = spec.layer_to_group or {n: n for n in order}
    chans, bits = split_knobs(counts)
    b = [int(before[n]) for n in order]
    a = [int(chans.get(l2g.get(n, n), before[n])) for n in order]
    model_layers = list(spec.model_layers) if spec.model_layers is not None else None
    layers = scale_layers(list(spec.layers), b, a, model_layers, dict(spec.acc_contributions))
    changed = {order.index(n): v for n, v in bits.items() if spec.base_bits.get(n) != v}
    return _with_bits(spec, layers, changed) if changed else layers


#: the narrowest operand FINN's RTL MVAU takes (``_mvu_rtl_possible``: both widths at least 2 bits)
RTL_MIN_BITS = 2


def candidate_layers(spec: PredictorSpec, counts: Mapping[str, int]) -> tuple[list[Any], list[Any] | None]:
    """What a candidate folds: ``spec``'s layers scaled to ``counts`` and, with a ``variant``, the mixed graph's
    (None where a bits knob goes below :data:`RTL_MIN_BITS`: FINN makes no RTL MVAU there, the variant is not
    predicted and the embedded graph's fold is the answer, a lower FPS than the fold stage may reach)."""
    from .bits import split_knobs

    layers = scaled_layers(spec, counts)
    if spec.variant is None or any(int(b) < RTL_MIN_BITS for b in split_knobs(counts)[1].values()):
        return layers, None
    return layers, scaled_layers(spec.variant, counts)


def fold_candidate(spec: PredictorSpec, layers: list[Any], variant: list[Any] | None,
                   optimise: Callable[..., Any], bounds: tuple[Any, Any] | None = None) -> HwPoint:
    """The fold stage's choice (``stages.variant.choose_design``): the embedded graph's fold, or the mixed
    graph's where it fits and is faster (a tie keeps the embedded graph). With ``bounds`` (each graph's
    :func:`relaxed_bound`: an FPS no fold of it beats) the graph with the higher bound is folded first and the
    other only where its bound could change the choice: the same answer, one solve fewer where the bounds tell the
    graphs apart."""
    if variant is None or spec.variant is None:
        return fold_point(spec, layers, optimise)
    graphs = ((spec, layers), (spec.variant, variant))
    if bounds is None:
        return choose_graph(*(fold_point(s, x, optimise) for s, x in graphs))
    bs = list(bounds)
    first = 1 if (bs[1].fits, bs[1].fps) > (bs[0].fits, bs[0].fps) else 0
    got = fold_point(*graphs[first], optimise)
    ob = bs[1 - first]
    if not ob.fits or (got.fits and (ob.fps <= got.fps if first == 0 else ob.fps < got.fps)):
        return got  # the other graph cannot fit, or cannot beat this fold (a tie keeps the embedded graph)
    other = fold_point(*graphs[1 - first], optimise)
    return choose_graph(got, other) if first == 0 else choose_graph(other, got)


def choose_graph(embedded: HwPoint, mixed: HwPoint) -> HwPoint:
    """``choose_design``'s rule on two folds: the mixed graph's where it fits and is faster, else the embedded's."""
    return mixed if mixed.fits and (not embedded.fits or mixed.fps > embedded.fps) else embedded


_RELAXATIONS: dict[int, tuple[PredictorSpec, Any]] = {}


def relaxed_bound(spec: PredictorSpec, layers: list[Any]) -> Any:
    """:class:`~hapfpga.pruning.fpsbound.FpsBound` of ``layers`` folded as ``spec`` says (one memoised
    ``Relaxation`` per spec object, in this process)."""
    got = _RELAXATIONS.get(id(spec))
    if got is None or got[0] is not spec:
        from .fpsbound import Relaxation

        if len(_RELAXATIONS) >= 16:  # a predictor has one or two specs: keep a process's memo small
            _RELAXATIONS.clear()
        got = _RELAXATIONS[id(spec)] = (spec, Relaxation(spec.board, spec.options))
    return got[1].bound(layers)


def fold_point(spec: PredictorSpec, layers: list[Any], optimise: Callable[..., Any]) -> HwPoint:
    """The proven fastest folding of ``layers`` as an ``HwPoint`` (``fits=False``, 0 FPS when none fits)."""
    try:
        res = _solve_proven(optimise, layers, spec)
    except SolverTimeLimitError:
        raise  # not "does not fit": unknown
    except InfeasibleError:
        return HwPoint(0.0, Resources(), False)
    total = res.total
    budget = getattr(res, "budget", None) or spec.board.budget
    return HwPoint(float(res.fps), total, bool(total.fits_in(budget)), res.bottleneck, res.plan)


def predict_point(spec: PredictorSpec, counts: Mapping[str, int], optimise: Callable[..., Any]) -> HwPoint:
    """One prediction: ``spec``'s layers scaled to ``counts`` and folded (``fits=False``, 0 FPS when none fits)."""
    return fold_candidate(spec, *candidate_layers(spec, counts), optimise)


def _with_bits(spec: PredictorSpec, layers: list[Any], changed: Mapping[int, int]) -> list[Any]:
    """``layers`` with the changed operand bits: MVAU by MVAU on a chain (``bits.apply_operand_bits``), along the
    streams of each activation quantiser on a DAG (``bits.apply_dag_bits``, FINN nodes matched to the model's
    layers on the unscaled specs)."""
    from .bits import apply_dag_bits, apply_operand_bits
    from .plan import match_hw_layers

    if not spec.dag_bits:
        return apply_operand_bits(layers, changed)
    model_layers = list(spec.model_layers) if spec.model_layers is not None else None
    return apply_dag_bits(layers, match_hw_layers(list(spec.layers), model_layers, len(spec.order)), changed)


_WORKER_SPEC: list[PredictorSpec] = []


def _worker_init(spec: PredictorSpec) -> None:
    from .parallel import die_with_parent

    die_with_parent()
    _WORKER_SPEC[:] = [spec]


def _worker_fold(item: tuple[list[Any], list[Any] | None, tuple[Any, Any] | None]) -> HwPoint:
    layers, variant, bounds = item
    return fold_candidate(_WORKER_SPEC[0], layers, variant, _default_optimise(), bounds)


def _key(counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, int(v)) for k, v in counts.items()))


#: the predictor's answers across runs (``HAPFPGA_PREDICTOR_CACHE``: another folder, or ``off``)
DEFAULT_CACHE = Path.home() / ".cache" / "hapfpga" / "predictor"


def default_cache_dir() -> Path | None:
    """``HAPFPGA_PREDICTOR_CACHE`` (a folder, or ``off``/``0``/empty: no cache on disk), else ``DEFAULT_CACHE``."""
    env = os.environ.get("HAPFPGA_PREDICTOR_CACHE")
    if env is None:
        return DEFAULT_CACHE
    return None if env.strip().lower() in ("", "0", "off", "no", "false") else Path(env)


_CODE_HASH: list[str] = []


def _code_hash() -> str:
    """A hash of what computes a prediction besides its inputs: the folding optimiser's and the estimator's
    sources and the solver's version (scipy's HiGHS), so a changed cost model or solver misses the cache."""
    if not _CODE_HASH:
        import scipy

        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256(scipy.__version__.encode())
        for f in sorted([*root.glob("folding/*.py"), *root.glob("estimate/*.py"), *root.glob("estimate/**/*.py"),
                         Path(__file__)]):
            h.update(f.as_posix().encode() + f.read_bytes())
        _CODE_HASH.append(h.hexdigest())
    return _CODE_HASH[0]


def layers_key(spec: PredictorSpec, layers: Sequence[Any], variant: Sequence[Any] | None = None) -> str | None:
    """The cache key of a prediction: a hash of everything that produced it (the scaled layer specs of each graph
    folded, the board, the folding options but their time limit, which changes when a solve is proven, not what it
    proves, and the code), or None when a part has no stable text (a custom ``cost_fn``/``edge_cost``: not cached
    on disk)."""
    opts = dataclasses.replace(spec.options, time_limit=0.0)
    if opts.cost_fn is not None or callable(opts.edge_cost):
        return None
    parts = [repr(list(layers)), repr(spec.board), repr(opts), _code_hash()]
    if variant is not None and spec.variant is not None:
        parts += [repr(list(variant)), repr(dataclasses.replace(spec.variant.options, time_limit=0.0))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class HwPredictor:
    """``counts -> HwPoint`` for one unpruned model. ``predict_many`` folds a batch in ``workers`` spawned
    processes (each receives the spec) when ``workers > 0``; ``close()`` stops them. ``optimise`` replaces
    ``hapfpga.folding.optimise.optimise`` (called as ``optimise(layers, board, options)``; tests). Calling the
    predictor is ``predict``: the searches take any ``counts -> HwPoint`` callable.

    Answers are cached per counts and per scaled layer specs (:func:`layers_key`: two knob settings that give the
    same specs share a solve), in memory and, with ``cache_dir``, on disk across runs (the proven optimum is a
    function of the key). ``upper_bound(counts)`` is an FPS no folding of the candidate beats
    (:mod:`hapfpga.pruning.fpsbound`, milliseconds); when even that relaxation fits nothing, ``predict`` answers
    "does not fit" without a solve. ``stats`` counts solves, cache hits and those answers."""

    def __init__(self, spec: PredictorSpec, *, workers: int = 0, optimise: Callable[..., Any] | None = None,
                 cache_dir: str | Path | None = None):
        self.spec = spec
        self.workers = int(workers)
        self._optimise = optimise
        self.cache_dir = Path(cache_dir) if cache_dir is not None and optimise is None else None
        self._cache: dict[tuple[tuple[str, int], ...], HwPoint] = {}
        self._by_layers: dict[str, HwPoint] = {}
        self._bounds: dict[tuple[tuple[str, int], ...], Any] = {}
        self._graph_bounds: dict[tuple[tuple[str, int], ...], tuple[Any, Any]] = {}  # (embedded, mixed) per key
        self._pool: Any = None
        self.stats = {"solves": 0, "memory_hits": 0, "disk_hits": 0, "bound_no_fit": 0}

    def predict(self, counts: Mapping[str, int]) -> HwPoint:
        return self.predict_many([counts])[0]

    __call__ = predict

    def predict_many(self, batch: Sequence[Mapping[str, int]]) -> list[HwPoint]:
        """Each candidate's point, in order; the ones no cache nor bound answers are solved (in the workers)."""
        todo: dict[str, tuple[Any, ...]] = {}
        lks: dict[tuple[tuple[str, int], ...], str] = {}
        for c in batch:
            key = _key(c)
            if key in self._cache or key in lks:
                continue
            layers = candidate_layers(self.spec, c)
            lks[key] = lk = layers_key(self.spec, *layers) or f"counts:{key}"
            if lk in todo:
                self.stats["memory_hits"] += 1
            elif self._known(lk, key, layers) is None:  # its bounds are known now (upper_bound_of)
                todo[lk] = (*layers, self._graph_bounds.get(key))
        for lk, point in zip(todo, self._solve(list(todo.values())), strict=True):
            self._store(lk, point)
        for key, lk in lks.items():
            self._cache[key] = self._by_layers[lk]
        return [self._cache[_key(c)] for c in batch]

    def remember(self, counts: Mapping[str, int], point: HwPoint) -> None:
        """Take ``point`` as the prediction of ``counts``, folded elsewhere with this predictor's spec and rule
        (``hwmodel._gate`` folds the unpruned model to choose the spec): cached like a solve's answer."""
        layers = candidate_layers(self.spec, counts)
        lk = layers_key(self.spec, *layers)
        if lk is not None:
            self._store(lk, point)
        self._cache[_key(counts)] = point

    def _known(self, lk: str, key: tuple[tuple[str, int], ...], layers: tuple[list[Any], list[Any] | None]
               ) -> HwPoint | None:
        """The point from memory, disk or the bound (a relaxation that fits nothing), else None (to solve)."""
        if lk in self._by_layers:
            self.stats["memory_hits"] += 1
            return self._by_layers[lk]
        point = self._read(lk)
        if point is not None:
            self.stats["disk_hits"] += 1
        elif self._optimise is None and not self.upper_bound_of(key, layers).fits:
            self.stats["bound_no_fit"] += 1
            point = HwPoint(0.0, Resources(), False)
        if point is not None:
            self._by_layers[lk] = point
        return point

    def _solve(self, items: list[tuple[Any, ...]]) -> list[HwPoint]:
        """Fold each (layers, mixed-graph layers, their bounds): the bounds the no-fit check computed order the two
        graphs' folds (none with a stand-in solver: no cost model to bound with)."""
        self.stats["solves"] += len(items)
        if len(items) > 1 and self.workers > 0 and self._optimise is None:
            return list(self._executor().map(_worker_fold, items))
        return [fold_candidate(self.spec, *item[:2], self._optimise or _default_optimise(),
                               None if self._optimise is not None else item[2]) for item in items]

    def upper_bound(self, counts: Mapping[str, int]) -> float:
        """An FPS the candidate's proven fastest folding never exceeds (0: it fits nothing); ``inf`` with a
        replaced ``optimise`` (no cost model to bound with)."""
        if self._optimise is not None:
            return float("inf")
        key = _key(counts)
        if key in self._cache:
            return self._cache[key].fps
        return self.upper_bound_of(key).fps

    def upper_bound_of(self, key: tuple[tuple[str, int], ...],
                       layers: tuple[list[Any], list[Any] | None] | None = None) -> Any:
        """:class:`~hapfpga.pruning.fpsbound.FpsBound` of the candidate ``key`` (its :func:`candidate_layers` if
        known): with a variant, the larger of the two graphs' bounds (the fold keeps the faster)."""
        if key not in self._bounds:
            main, variant = layers or candidate_layers(self.spec, dict(key))
            bounds = [relaxed_bound(self.spec, main)]
            if variant is not None and self.spec.variant is not None:
                bounds.append(relaxed_bound(self.spec.variant, variant))
                self._graph_bounds[key] = (bounds[0], bounds[1])
            self._bounds[key] = max(bounds, key=lambda b: (b.fits, b.fps))
        return self._bounds[key]

    def _file(self, lk: str) -> Path | None:
        if self.cache_dir is None or lk.startswith("counts:"):
            return None
        return self.cache_dir / lk[:2] / f"{lk}.pkl"

    def _read(self, lk: str) -> HwPoint | None:
        f = self._file(lk)
        if f is None or not f.is_file():
            return None
        try:
            point = pickle.loads(f.read_bytes())
        except Exception:  # a truncated or foreign file is a miss, never an answer
            return None
        return point if isinstance(point, HwPoint) else None

    def _store(self, lk: str, point: HwPoint) -> None:
        self._by_layers[lk] = point
        f = self._file(lk)
        if f is None:
            return
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(point))
            os.replace(tmp, f)
        except OSError:  # a read-only or full disk costs the next run a solve, not this one its answer
            pass

    def _executor(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_worker_init, initargs=(self.spec,))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


@dataclass(frozen=True)
class HwTarget:
    """The hardware a pruned design is for: the board, the fold stage's folding options (the predictor folds as
    they say, ``FoldingOptions.for_predictor``), the graphs it folds (``folding.variants``; ``embedded`` where
    open tools take the design, ``stages.fold._for_open_tools``) and, for tests and benchmarks, a predictor that
    replaces the built-in one (any ``counts -> HwPoint`` callable)."""

    board: Any = None
    folding: FoldingOptions = FoldingOptions()
    predictor: Callable[[Mapping[str, int]], HwPoint] | None = None
    variants: str = "auto"
