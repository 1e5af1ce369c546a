"""`python -m bench [s2 s4 …]`: run the scenarios (all by default) on this run's own database and vhost.

Each scenario module `bench/sN_*.py` has `run(infra) -> str`, returning a Markdown section of its
figures next to their baselines. The sections are printed and saved in bench-results/latest.md.
"""

import importlib
import pkgutil
import sys
from pathlib import Path

import bench
from shared.broker import ensure_topology
from shared.migrate import upgrade
from tests.support.infra import provision

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def scenarios() -> dict[str, str]:
    names = sorted(module.name for module in pkgutil.iter_modules(bench.__path__) if module.name[:1] == "s")
    return {name.split("_")[0]: name for name in names}


def main(selected: list[str]) -> None:
    available = scenarios()
    chosen = selected or list(available)
    unknown = set(chosen) - set(available)
    if unknown:
        sys.exit(f"unknown scenarios {sorted(unknown)}; there are {sorted(available)}")
    sections = []
    for key in chosen:
        with provision() as infra:
            upgrade(infra.database_url)
            ensure_topology(infra.amqp_url)
            module = importlib.import_module(f"bench.{available[key]}")
            section = module.run(infra)
        print(section, flush=True)
        sections.append(section)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
