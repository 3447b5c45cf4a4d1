"""Each benchmark's headline figures, saved beside its Markdown results as JSON, for
tests/bench/report.py to gather into BENCHMARKS.md: every figure with the reference measured in
the same run, their ratio, and the target (if the project has one)."""
import json
from pathlib import Path


def figure(name: str, value: float, unit: str, reference: str | None = None,
           reference_value: float | None = None, ratio: float | None = None,
           ratio_means: str = "", target: str = "", met: bool | None = None) -> dict:
    """RATIO is given by the caller, oriented so that bigger is better for Sealstore, and
    RATIO_MEANS says how to read it (e.g. "x faster", "of direct SQL")."""
    return {"figure": name, "value": value, "unit": unit, "reference": reference,
            "reference_value": reference_value, "ratio": ratio, "ratio_means": ratio_means,
            "target": target, "met": met}


def save(markdown_path, title: str, figures: list[dict]):
    path = Path(markdown_path).with_suffix(".json")
    path.write_text(json.dumps({"title": title, "results": Path(markdown_path).name,
                                "figures": figures}, indent=1) + "\n")
